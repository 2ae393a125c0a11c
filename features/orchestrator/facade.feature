Feature: Adapters behind the orchestrator facade
  Each target adapter is bound in an adapter host behind the orchestrator facade
  (adapters.orchestrator) served over real HTTP; tasks are admitted with POST /v1/tasks and
  their events read from the SSE stream, decoded byte by byte. Under --orchestrator-url the same
  scenarios judge an orchestrator the harness does not own: what needs the engine behind it (faults,
  journal, generation plan), its logs or its code is reported unsupported. Token faithfulness
  against the plan is the long-stream scenario's (SSE-1004), which needs the engine.

  @SSE-1002 @ORCH-3409
  Scenario: The facade streams the adapter's tokens as SSE in order
    Given the adapter is served through the orchestrator facade
    And a completion of 12 tokens for prompt "Through the facade"
    When the facade streams the task
    Then the stream follows the contract grammar
    And the stream ends with end
    And the started event carries queue_position and predicted_start_ms
    And the facade answered the stream with HTTP 200

  @SSE-1001
  Scenario: The facade flushes each event as it comes
    Given the adapter is served through the orchestrator facade
    And a completion of 8 tokens for prompt "Flush me"
    And the engine injects "stall.midstream;after_events=3;delay_ms=600"
    When the facade streams the task
    Then the stream follows the contract grammar
    And the first token reached the caller before the engine sent its last byte

  @ORCH-3406 @ORCH-3407 @ORCH-3408 @ORCH-3409
  Scenario: A mid-stream failure is an SSE error frame on a 200 stream, and nothing follows it
    Given the adapter is served through the orchestrator facade
    And the adapter makes at most 1 attempt
    And a completion of 16 tokens for prompt "Fail behind the facade"
    And the engine injects "midstream.disconnect;after_events=3"
    When the facade streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
    And the facade answered the stream with HTTP 200

  @ORCH-3408
  Scenario: An invalid task is refused with an HTTP status before any stream
    Given the adapter is served through the orchestrator facade
    When an invalid task is submitted to the facade
    Then the invalid task was refused with HTTP 400 and code INVALID_PARAMS

  @SSE-1002 @SSE-1003
  Scenario: Cancel through the facade stops tokens and closes the upstream connection
    Given the adapter is served through the orchestrator facade
    And a completion of 64 tokens for prompt "Cancel the facade"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the facade cancels the task after 2 tokens
    Then no token arrived after cancel returned
    And the stream ended well before the stall was over
    And the engine saw the client disconnect

  @SSE-1003
  Scenario: A client that disconnects from the facade cancels the task upstream
    Given the adapter is served through the orchestrator facade
    And a completion of 64 tokens for prompt "Walk away"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the facade client disconnects after 2 tokens
    Then the engine saw the client disconnect

  @SSE-1004
  Scenario: No token is dropped on a long stream
    Given the adapter is served through the orchestrator facade
    And a completion of 300 tokens for prompt "A long story without an end"
    When the facade streams the task
    Then the stream follows the contract grammar
    And the tokens reproduce the generation plan

  @SSE-1005
  Scenario: An HTTP/2-capable client falls back to HTTP/1.1 without behaviour change
    Given the adapter is served through the orchestrator facade
    And the facade client offers HTTP/2
    And a completion of 8 tokens for prompt "Any protocol"
    When the facade streams the task
    Then the facade client negotiated HTTP/1.1 and the stream behaved the same
    And the stream follows the contract grammar
    And the stream ends with end

  @OC-METRICS-7101 @OC-METRICS-7102
  Scenario: The facade's metrics follow the metrics contract
    Given the adapter is served through the orchestrator facade
    And a completion of 8 tokens for prompt "Count me in"
    When the facade streams the task
    And the facade's metrics are scraped
    Then every contract metric the facade exposes carries the linter's labels within budget

  @OC-METRICS-7110
  Scenario: SSE metrics frames carry the planning fields
    Given the adapter is served through the orchestrator facade
    And a completion of 8 tokens for prompt "Plan ahead"
    When the facade streams the task
    Then every SSE metrics frame carries on_time_probability, queue_depth and kv_warmth

  @AUTH-1001 @AUTH-1005
  Scenario: A configured bearer token is required and checked
    Given the adapter is served through the orchestrator facade
    And the orchestrator facade requires a bearer token
    And a completion of 4 tokens for prompt "Who goes there"
    When tasks are submitted without a token, with a wrong token and with the token
    Then the facade refused the missing and the wrong token and accepted the right one

  @AUTH-1008
  Scenario: The facade logs identities by token fingerprint, never the token
    Given the adapter is served through the orchestrator facade
    And the orchestrator facade requires a bearer token
    And a completion of 4 tokens for prompt "Name yourself"
    When tasks are submitted without a token, with a wrong token and with the token
    Then the facade logged identities as token fingerprints, never the token

  @AUTH-1002 @AUTH-1004 @AUTH-1007 @per-run
  Scenario: The facade's bind and token rules
    Then a non-loopback bind without a token is refused and allowed with one
    And loopback may skip the token only when auth is optional
    And the token comparison goes through a constant-time primitive
