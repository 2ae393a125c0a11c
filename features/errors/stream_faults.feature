Feature: Faults in the middle of a stream end it with one terminal error
  Once the first byte arrived a stream is never retried (it is not idempotent any more); the
  failure is surfaced as one terminal error event with code, retriable and retry_after_ms?, and
  nothing follows it.

  @WA-INT-3008 @HTU-ERR-4004 @HTU-EXP-1102 @ADAPT-3002
  Scenario: A disconnect after some tokens ends WORKER_RESET, retriable, without a retry
    Given a completion of 16 tokens for prompt "Hang up on me"
    And the engine injects "midstream.disconnect;after_events=3"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
    And the tokens so far are a prefix of the generation plan
    And the engine received 1 generation request

  @WA-INT-3008 @ADAPT-3002
  Scenario: A cut inside a multi-byte character never yields a broken character
    Given a completion of 32 tokens for prompt "Cut me in half"
    And the engine injects "midstream.cut_utf8"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
    And no token contains a replacement character

  @WA-INT-3008 @ADAPT-3002 @HTU-ERR-4002 @HTU-ERR-4003
  Scenario: The engine's in-stream error event becomes the terminal error event
    Given a completion of 16 tokens for prompt "Break in the middle"
    And the engine injects "stream.error_event;after_events=2"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with the mapping table's error for "server_error"
    And the tokens so far are a prefix of the generation plan
    And the error message is short and redacted

  @ADAPT-3002 @HTU-ERR-4002
  Scenario Outline: A protocol violation (<fault>) ends INTERNAL, not retriable
    Given a completion of 16 tokens for prompt "Speak nonsense"
    And the engine injects "<fault>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "INTERNAL" and retriable false

    Examples:
      | fault                   |
      | frame.malformed_json    |
      | http.wrong_content_type |

  @WA-INT-3001 @ADAPT-3002
  Scenario Outline: A repeated or reordered upstream index (<fault>) never reaches the caller
    Given a completion of 16 tokens for prompt "Count carefully"
    And the engine injects "<fault>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "INTERNAL" and retriable false

    Examples:
      | fault                     |
      | frame.duplicate_index     |
      | frame.out_of_order_index  |

  @ADAPT-3002 @WA-INT-3008
  Scenario: A stream without its terminal frame ends WORKER_RESET
    Given a completion of 8 tokens for prompt "Never finish"
    And the engine injects "frame.missing_terminal"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
