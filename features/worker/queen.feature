Feature: The queen's side of the heartbeat protocol
  The queen built here: POST /v1/worker-heartbeat acknowledges with HeartbeatAck, keeps the
  registry by worker id, and a worker is online while its last heartbeat is recent (whole seconds,
  strict <: 90 s old is stale at the 90 s timeout) and available when online and ready or busy.

  @WKR-1008 @per-run
  Scenario Outline: Recency at the contract's 90 s timeout: <age> s old is <verdict>
    Given a mock queen with the contract's 30 s interval and 90 s timeout
    When a worker's last heartbeat is <age> s old
    Then the worker is <verdict> at the queen

    Examples:
      | age  | verdict |
      | 0    | online  |
      | 89.5 | online  |
      | 90   | stale   |
      | 91   | stale   |

  @WKR-1010 @per-run
  Scenario: Available means online and ready or busy
    Given a mock queen
    When a worker in status "starting" sends a heartbeat
    And a worker in status "ready" sends a heartbeat
    And a worker in status "busy" sends a heartbeat
    And a worker in status "stopping" sends a heartbeat
    And a worker in status "stopped" sends a heartbeat
    Then the queen lists exactly w-ready, w-busy as available

  @WKR-1014 @per-run
  Scenario: A valid heartbeat is acknowledged ok
    Given a mock queen
    When a worker in status "ready" sends a heartbeat
    Then the queen acknowledges with 200 and status "ok"
    And the queen's registry holds 1 worker

  @WKR-1014 @per-run
  Scenario Outline: An invalid heartbeat is acknowledged error and not registered: <case>
    Given a mock queen
    When the queen is sent the heartbeat <body>
    Then the queen acknowledges with 400 and status "error"
    And the queen's registry holds 0 workers

    Examples:
      | case              | body                                                                                                                                                       |
      | no timestamp      | {"worker": {"id": "w", "model_id": "m", "device": "CPU-0", "port": 1, "status": "ready", "implementation": "x", "version": "1"}}                            |
      | local timestamp   | {"worker": {"id": "w", "model_id": "m", "device": "CPU-0", "port": 1, "status": "ready", "implementation": "x", "version": "1"}, "timestamp": "2026-01-01T00:00:00"} |
      | unknown status    | {"worker": {"id": "w", "model_id": "m", "device": "CPU-0", "port": 1, "status": "Ready", "implementation": "x", "version": "1"}, "timestamp": "2026-01-01T00:00:00Z"} |
      | missing port      | {"worker": {"id": "w", "model_id": "m", "device": "CPU-0", "status": "ready", "implementation": "x", "version": "1"}, "timestamp": "2026-01-01T00:00:00Z"} |
      | not JSON          | worker=w                                                                                                                                                   |
