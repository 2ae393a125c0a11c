Feature: Stream grammar against the generation plan
  An adapter turns the engine's own stream into started → token* → [metrics] → end, and the
  tokens it yields are exactly the tokens the mock engine planned (multi-byte UTF-8,
  whitespace-only tokens and U+2028/U+0085 included). The plan is the oracle.

  @ADAPT-3000 @ADAPT-3001 @WA-INT-3001 @HTU-1003 @black-box
  Scenario: A completion streams started, tokens and end in order
    Given a completion of 12 tokens for prompt "Tell me about the sea"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with end

  @ADAPT-3001 @WA-INT-3001 @HTU-1003
  Scenario: The tokens reproduce the engine's generation plan
    Given a completion of 24 tokens for prompt "Write a haiku about rivers"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

  @HTU-1003 @HTU-PERF-1302 @ADAPT-3101
  Scenario Outline: Tokens survive hostile chunking of the byte stream (<fault>)
    Given a completion of 16 tokens for prompt "Chunk me up"
    And the engine injects "<fault>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the tokens reproduce the generation plan

    Examples:
      | fault                              |
      | frame.split_utf8                   |
      | frame.split_every_byte             |
      | stream.keepalive_flood;count=2000  |

  @HTU-PERF-1302 @ADAPT-3101
  Scenario: Tokens reach the caller before the engine finishes sending
    Given a completion of 8 tokens for prompt "Be incremental"
    And the engine injects "stall.midstream;after_events=3;delay_ms=600"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the first token reached the caller before the engine sent its last byte

  @HTU-PERF-1302 @ADAPT-3002
  Scenario: An oversized frame fails cleanly instead of buffering forever
    Given a completion of 8 tokens for prompt "Grow without bound"
    And the engine injects "frame.oversized;size=4500000"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with error code "INTERNAL" and retriable false

  @ADAPT-3000 @WA-INT-3001
  Scenario: The task's stop sequences end the stream at the first match
    Given a completion of 64 tokens for prompt "Stop when you see it"
    And the task stops at a sequence its plan contains
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason
