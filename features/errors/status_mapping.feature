Feature: Upstream failures map to the WorkerError taxonomy
  Every upstream failure becomes exactly one terminal error event whose code and retriability
  follow the one mapping table (adapters.api.ERROR_MAPPING); permanent failures are not retried.

  @ADAPT-3002 @WA-INT-3004 @HTU-ERR-4002 @HTU-EXP-1102 @HTU-EXP-1106
  Scenario Outline: A permanent upstream status <fault> maps to <code> without retry
    Given a completion of 8 tokens for prompt "Fail permanently"
    And the engine injects "<fault>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "<code>" and retriable false
    And the engine received 1 generation request

    Examples:
      | fault    | code             |
      | http.400 | INVALID_PARAMS   |
      | http.401 | INTERNAL         |
      | http.404 | POOL_UNAVAILABLE |
      | http.422 | INVALID_PARAMS   |

  @ADAPT-3002 @HTU-ERR-4002 @HTU-ERR-4003
  Scenario: An upstream 500 maps to WORKER_RESET, retriable
    Given a completion of 8 tokens for prompt "Fail on the server"
    And the engine injects "http.500"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
    And the error message is short and redacted

  @WA-INT-3003 @ADAPT-3005 @HTU-1002 @HTU-ERR-4004
  Scenario: A persistent 503 is retried within the policy and ends POOL_UNAVAILABLE, retriable
    Given a completion of 8 tokens for prompt "Stay unavailable"
    And the engine injects "http.503"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "POOL_UNAVAILABLE" and retriable true
    And the engine received between 2 and 4 generation requests
    And the retries were spaced within the capped jitter bounds

  @WA-INT-3003 @HTU-1002 @ADAPT-3005
  Scenario: A 503 before the first byte is retried and the stream then succeeds
    Given a completion of 8 tokens for prompt "Recover after a while"
    And the engine injects "http.503;first=2"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with end
    And the engine received 3 generation requests
    And the retries were spaced within the capped jitter bounds

  @WA-INT-3003 @HTU-ERR-4004 @HTU-EXP-1106
  Scenario: A 429 with Retry-After is honoured before the retry
    Given a completion of 8 tokens for prompt "Slow down please"
    And the engine injects "http.429_retry_after;seconds=1;first=1"
    When the adapter streams the task
    Then the stream ends with end
    And the engine received 2 generation requests
    And the retry waited at least 900 ms after the 429

  @WA-INT-3003 @HTU-ERR-4004 @HTU-EXP-1106
  Scenario: A persistent 429 ends POOL_UNAVAILABLE with retry_after_ms
    Given a completion of 8 tokens for prompt "Rate limited for good"
    And the adapter makes at most 1 attempt
    And the engine injects "http.429_retry_after;seconds=2"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "POOL_UNAVAILABLE" and retriable true
    And the error carries retry_after_ms of 2000

  @ADAPT-3002 @WA-INT-3003
  Scenario Outline: The engine's own unavailability (<fault>) maps to POOL_UNAVAILABLE, retriable
    Given a completion of 8 tokens for prompt "Are you there"
    And the adapter makes at most 1 attempt
    And the engine injects "<fault>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "POOL_UNAVAILABLE" and retriable true

    Examples:
      | fault            |
      | engine.overload  |
      | conn.port_closed |
