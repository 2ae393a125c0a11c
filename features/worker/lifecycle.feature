Feature: The rbee worker lifecycle and heartbeats
  A worker reports starting until its engine is ready, busy while every slot is in use, stopping
  and stopped on a graceful shutdown, and tells the queen with a heartbeat every interval (30 s
  in the contract; 50 ms here) — also while the queen is down, with capped jittered backoff.

  @WKR-1007 @black-box
  Scenario: Heartbeats reach the queen every interval
    Given the adapter is served as an rbee worker reporting to a mock queen
    Then the queen receives heartbeats every interval with an RFC 3339 UTC timestamp

  @WKR-1009 @WKR-1005 @WKR-1013
  Scenario: starting → ready → busy → ready → stopping → stopped
    Given the worker has 1 slot
    And the worker's engine is still loading
    And the worker's engine injects "stall.midstream;after_events=2;delay_ms=4000"
    When the worker is started
    Then the worker reports starting and refuses inference with 503
    When the worker's engine finishes loading
    And every slot of the worker is held by a stream
    And the held streams are closed
    And the worker is asked to stop
    Then the worker refuses inference with 503 while stopping
    When the worker shuts down gracefully
    Then the worker's statuses were starting, ready, busy, ready, stopping, stopped
    And the queen's last heartbeat from the worker says stopped

  @WKR-1012
  Scenario: The queen is down: the worker keeps serving and retries with backoff
    Given the queen is down
    And the adapter is served as an rbee worker reporting to a mock queen
    When the worker serves requests while the queen is down
    Then every request was served while the queen was down
    And the worker retried its heartbeats with capped jittered backoff
    When the queen comes back
    Then the queen registers the worker again

  @WKR-1008 @WKR-1013
  Scenario: A worker that stopped is stale at the queen after the timeout
    Given the adapter is served as an rbee worker reporting to a mock queen
    When the worker shuts down gracefully
    Then the queen's last heartbeat from the worker says stopped
    And the queen marks the worker unavailable within the timeout
