@dialect:llamacpp
Feature: llama.cpp adapter
  The llama.cpp adapter speaks the native llama-server API (/health, /props or /slots,
  POST /completion with stream true) and keeps the OpenAI-compatible routes internal.

  @OC-ADAPT-5001 @ORCH-3054 @needs:cancel
  Scenario: llama.cpp health, properties, completion and cancel use the native API
    Given a completion of 32 tokens for prompt "Native tongue"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the adapter's surface is inspected
    And the task is cancelled after 2 tokens
    Then health is live and ready
    And props report at least one slot
    And the engine saw requests on "/health" and one of "/props,/slots"
    And the generation request went to "/completion" with stream true
    And no token arrived after cancel returned
    And the cancelled stream ended promptly with end and stop_reason cancelled
    And the engine saw the client disconnect

  @OC-ADAPT-5001a @needs:metrics_scrape
  Scenario: llama.cpp metrics are scraped from /metrics
    When the adapter's engine metrics are scraped
    Then the engine saw requests on "/metrics"

  @OC-ADAPT-5001 @ADAPT-3000
  Scenario: llama.cpp passes the task's engine parameters through
    Given a completion of 120 tokens for prompt "Keep going past the end"
    And the task passes engine parameters '{"ignore_eos": true}'
    When the adapter streams the task
    Then the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

  @OC-ADAPT-5002
  Scenario: llama.cpp OpenAI-compatible endpoints stay internal
    Given a completion of 8 tokens for prompt "Stay native"
    When the adapter streams the task
    And the adapter's surface is inspected
    Then the stream ends with end
    And the engine saw no request on a "/v1/" path
    And the adapter exposes nothing beyond the WorkerAdapter contract

  @OC-ADAPT-5010
  Scenario: llama.cpp replicas agree on detokenization and sampler profile
    Given a completion of 24 tokens for prompt "Normalise me"
    And the task carries a seed of its own
    And the task names sampler profile "v1"
    When the task is streamed on two replicas of the engine
    Then both replicas produced identical token streams
    And both replicas received identical sampling parameters

  @OC-ADAPT-5011
  Scenario: llama.cpp engine_version reports the engine's build
    Given a completion of 4 tokens for prompt "Which build are you"
    When the adapter's surface is inspected
    And the adapter streams the task
    And the adapter's surface is inspected
    Then engine_version names the engine's own version
