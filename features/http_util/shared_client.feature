Feature: The shared HTTP layer
  Adapters build their clients through the shared HTTP layer: documented defaults, capped and
  seeded full-jitter retries, one redaction style, one mapping table, and connection reuse.

  @HTU-1001 @ORCH-3610 @HTU-SEC-1401 @HTU-EXP-1105 @per-run
  Scenario: The shared client builder has the documented defaults
    When the shared HTTP client is built with its defaults
    Then it connects within 5 s and reads within 30 s
    And it prefers HTTP/2, verifies TLS and ignores the environment

  @HTU-1002 @HTU-EXP-1103 @ORCH-3611 @HTU-EXP-1102 @per-run
  Scenario: Retry delays are capped, full-jitter and reproducible from a seed
    When an operation that keeps failing retriably is retried with seed 7
    Then it was attempted 4 times with delays within 100, 200 and 400 ms
    And the same seed gives the same delays
    And a non-idempotent or non-retriable operation is attempted once

  @HTU-1004 @HTU-ERR-4001 @ORCH-3613 @per-run
  Scenario: Redaction has one style everywhere
    Then redacting "test" as a secret gives "****9f86d0"
    And authorization headers, API-key headers, key=value pairs and URL credentials are redacted

  @HTU-ERR-4002 @HTU-ERR-4003 @HTU-EXP-1106 @per-run
  Scenario: Upstream statuses map through the one table
    Then every upstream status maps to the table's code, retriability and Retry-After

  @HTU-PERF-1301 @ORCH-3612 @needs:connection_reuse
  Scenario: Connections are reused across tasks
    Given a completion of 4 tokens for prompt "Again and again"
    When the adapter streams the task 3 times
    Then the engine received 3 generation requests
    And the engine saw at most 2 connections
