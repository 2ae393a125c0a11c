@dialect:vllm
Feature: vLLM adapter
  The vLLM adapter drives the OpenAI-compatible server internally and reports the engine and
  sampler-profile versions.

  @OC-ADAPT-5020 @ORCH-3055 @needs:cancel
  Scenario: vLLM health, properties, completion and cancel
    Given a completion of 32 tokens for prompt "Serve quickly"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the adapter's surface is inspected
    And the task is cancelled after 2 tokens
    Then health is live and ready
    And the generation request went to one of "/v1/completions,/v1/chat/completions" with stream true
    And no token arrived after cancel returned
    And the engine saw the client disconnect

  @OC-ADAPT-5021 @ORCH-3055
  Scenario: vLLM OpenAI endpoints stay internal
    When the adapter's surface is inspected
    Then the adapter exposes nothing beyond the WorkerAdapter contract

  @OC-ADAPT-5030 @ORCH-3055
  Scenario: vLLM reports engine_version and the sampler profile version
    Given a completion of 8 tokens for prompt "Version me"
    And the task names sampler profile "v1"
    When the adapter streams the task
    And the adapter's surface is inspected
    Then engine_version names the engine's own version
    And the started event names sampler profile "v1"
