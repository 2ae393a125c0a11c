Feature: Cancellation is prompt and closes the upstream connection
  cancel(task_id) is best effort but real: once it returns no token follows, the stream ends
  with end {stop_reason: cancelled} within 500 ms (cancel() itself returns within 1 s), and the
  engine sees its connection closed. Closing the stream iterator does the same.

  @WA-INT-3002 @ADAPT-3000 @ADAPT-3101 @needs:cancel
  Scenario: Cancel in flight stops tokens and closes the upstream connection
    Given a completion of 64 tokens for prompt "Talk for a long time"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the task is cancelled after 2 tokens
    Then no token arrived after cancel returned
    And the cancelled stream ended promptly with end and stop_reason cancelled
    And the stream ended well before the stall was over
    And the engine saw the client disconnect

  @WA-INT-3002 @ADAPT-3101
  Scenario: A caller that stops reading closes the upstream connection
    Given a completion of 64 tokens for prompt "Nobody is listening"
    And the engine injects "stall.midstream;after_events=4;delay_ms=3000"
    When the caller stops reading after 2 tokens
    Then the engine saw the client disconnect

  @ADAPT-3000 @black-box
  Scenario: Cancelling an unknown task is harmless
    When an unknown task is cancelled
    Then the cancel returned without error
