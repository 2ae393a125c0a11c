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
    And props report slot counts as integers or nothing
    And no token arrived after cancel returned
    And the cancelled stream ended promptly with end and stop_reason cancelled
    And the engine saw the client disconnect

  @OC-ADAPT-5020 @ORCH-3055
  Scenario: vLLM completion reports properties and metrics
    Given a completion of 12 tokens for prompt "Measure the service"
    When the adapter's surface is inspected
    And the adapter streams the task
    Then props report slot counts as integers or nothing
    And the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And every metrics event carries only numbers
    And the metrics event reports latency and token counts

  @OC-ADAPT-5020 @ADAPT-3000
  Scenario: vLLM streams a chat task through /v1/chat/completions
    Given a completion of 12 tokens for prompt "Chat with me"
    And the task asks for the chat endpoint
    When the adapter streams the task
    Then the generation request went to "/v1/chat/completions" with stream true
    And the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

  @OC-ADAPT-5020 @ADAPT-3000
  Scenario: vLLM passes the task's engine parameters through
    Given a completion of 120 tokens for prompt "Keep going past the end"
    And the task passes engine parameters '{"ignore_eos": true}'
    When the adapter streams the task
    Then the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

  @OC-ADAPT-5021 @ORCH-3055
  Scenario: vLLM OpenAI endpoints stay internal
    Given a completion of 8 tokens for prompt "Stay behind the adapter"
    When the adapter streams the task
    And the adapter's surface is inspected
    Then the stream ends with end
    And the adapter exposes nothing beyond the WorkerAdapter contract

  @OC-ADAPT-5030 @ORCH-3055
  Scenario: vLLM reports engine_version and the sampler profile version
    Given a completion of 8 tokens for prompt "Version me"
    And the task names sampler profile "v1"
    When the adapter streams the task
    And the adapter's surface is inspected
    Then engine_version names the engine's own version
    And the started event names sampler profile "v1"
