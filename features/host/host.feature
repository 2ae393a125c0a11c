Feature: Adapters under the adapter host
  Each target adapter is bound as replica r0 of pool pool-a in a fresh adapter host; the host's
  registry, facade, retries, breaker, capability cache, correlation ids, narration and metrics
  are proven with that adapter underneath.

  @AH-1002 @ORCH-3601 @ORCH-3620
  Scenario: The host facade streams and answers health and props for a pool
    Given the adapter is served through the adapter host
    And a completion of 12 tokens for prompt "Through the host"
    When the host's facade is inspected
    And the host streams the task
    Then health is live and ready
    And props report slot counts as integers or nothing
    And the stream follows the contract grammar
    And the tokens reproduce the generation plan

  @AH-1003
  Scenario: The host propagates the caller's correlation id
    Given the adapter is served through the adapter host
    And the caller sends correlation id "corr-llorch-0001"
    And a completion of 6 tokens for prompt "Correlate me"
    When the host streams the task
    Then the started event carries correlation id "corr-llorch-0001"
    And the host's narration names correlation id "corr-llorch-0001"

  @AH-1004 @ORCH-3601
  Scenario: Cancel through the host stops tokens and closes the upstream connection
    Given the adapter is served through the adapter host
    And a completion of 64 tokens for prompt "Talk through the host"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the host cancels the task after 2 tokens
    Then no token arrived after cancel returned
    And the stream ended well before the stall was over
    And the engine saw the client disconnect

  @AH-1005 @ORCH-3602
  Scenario Outline: Errors through the host keep the taxonomy (<fault>)
    Given the adapter is served through the adapter host
    And the adapter makes at most 1 attempt
    And the pool's retry policy allows 1 attempt
    And a completion of 16 tokens for prompt "Fail through the host"
    And the engine injects "<fault>"
    When the host streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "<code>" and retriable <retriable>

    Examples:
      | fault                               | code           | retriable |
      | http.400                            | INVALID_PARAMS | false     |
      | http.500                            | WORKER_RESET   | true      |
      | midstream.disconnect;after_events=3 | WORKER_RESET   | true      |

  @ORCH-3602 @AH-2003
  Scenario: The host retries a failure before the first token and counts it
    Given the adapter is served through the adapter host
    And the adapter makes at most 1 attempt
    And a completion of 8 tokens for prompt "Try the host again"
    And the engine injects "http.503;first=1"
    When the host streams the task
    Then the stream ends with end
    And the engine received 2 generation requests
    And the host metrics count 1 started task, 1 retry and the tokens

  @AH-1006
  Scenario: A per-pool retry policy overrides the host's default
    Given the adapter is served through the adapter host
    And the adapter makes at most 1 attempt
    And the pool's retry policy allows 1 attempt
    And a completion of 8 tokens for prompt "Only once"
    And the engine injects "http.503"
    When the host streams the task
    Then the stream ends with error code "POOL_UNAVAILABLE" and retriable true
    And the engine received 1 generation request

  @ORCH-3602
  Scenario: The circuit breaker opens after repeated failures and then fails fast
    Given the adapter is served through the adapter host
    And the adapter makes at most 1 attempt
    And the pool's retry policy allows 1 attempt
    And the host's circuit breaker opens after 2 failures
    And a completion of 8 tokens for prompt "Break the circuit"
    And the engine injects "http.500"
    When the host streams the task 3 times
    Then the replica's circuit breaker is open
    And the engine received 2 generation requests
    And the last stream failed fast with POOL_UNAVAILABLE

  @AH-1001 @ORCH-3600
  Scenario: Rebinding a replica switches new tasks to the new adapter
    Given the adapter is served through the adapter host
    And a completion of 6 tokens for prompt "Rebind me"
    When the replica is rebound to an adapter for a second engine and the task is streamed
    Then the second engine received the task and the first engine only the first task

  @AH-1007
  Scenario: A pinned pool is routed to; an unknown pin is INVALID_PARAMS
    Given the adapter is served through the adapter host
    And a completion of 6 tokens for prompt "Pin me"
    When tasks pinned to the bound pool and to an unknown pool are streamed
    Then the pinned task ends with end and the unknown pin ends INVALID_PARAMS, not retriable

  @ORCH-3603
  Scenario: The host caches the pool's capability snapshot
    Given the adapter is served through the adapter host
    When the host's facade is inspected
    Then the host asked the adapter for capabilities once

  @AH-2001 @AH-2002 @ORCH-3604
  Scenario: The host narrates and logs with the taxonomy fields
    Given the adapter is served through the adapter host
    And a completion of 6 tokens for prompt "Tell the story"
    When the host streams the task
    Then the stream ends with end
    And the host narrates submit, start and end as adapter-host with the task's ids
    And a host record carries job_id, session_id, engine, engine_version, pool_id and replica_id
