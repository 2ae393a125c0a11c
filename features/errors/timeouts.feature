Feature: Every network operation is bounded in time
  A silent engine never hangs the caller: the first-byte and inter-chunk timeouts and the task's
  deadline_ms end the stream with DECODE_TIMEOUT or DEADLINE_UNMET.

  @ADAPT-3005 @HTU-1001 @ADAPT-3002 @OC-ADAPT-OAI-6002
  Scenario: Silence in the middle of a stream ends DECODE_TIMEOUT
    Given a completion of 16 tokens for prompt "Stop talking"
    And the adapter's stream timeouts are 300 ms
    And the engine injects "stall.midstream;after_events=2;delay_ms=3000"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "DECODE_TIMEOUT" and retriable true
    And the stream ended well before the stall was over

  @ADAPT-3005 @HTU-1001
  Scenario: Silence before the first byte ends DECODE_TIMEOUT
    Given a completion of 16 tokens for prompt "Say nothing"
    And the adapter's stream timeouts are 300 ms
    And the adapter makes at most 1 attempt
    And the engine injects "stall.before_first_byte;delay_ms=3000"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "DECODE_TIMEOUT" and retriable true
    And the stream ended well before the stall was over

  @ADAPT-3002 @ADAPT-3005 @needs:deadline
  Scenario: A task past its deadline_ms ends DEADLINE_UNMET
    Given a completion of 16 tokens for prompt "Take your time"
    And the task deadline is 400 ms
    And the engine injects "stall.midstream;after_events=2;delay_ms=3000"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "DEADLINE_UNMET" and retriable false
    And the stream ended well before the stall was over

  @ADAPT-3002 @WA-INT-3003
  Scenario: A connection closed before any response ends WORKER_RESET, retriable
    Given a completion of 8 tokens for prompt "Knock knock"
    And the adapter makes at most 1 attempt
    And the engine injects "conn.accept_then_close"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
