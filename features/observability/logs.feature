Feature: Structured lifecycle logs carry the README_LLM fields
  On completion the adapter logs the fields the orchestrator's proof and metrics depend on, as
  structured data (a record's ``llorch`` mapping, record attributes or a JSON message).

  @WA-INT-3007 @ADAPT-3004 @HTU-SEC-1402 @black-box
  Scenario: The completion log record carries the README_LLM fields
    Given a completion of 48 tokens for prompt "Log me"
    And the task stops at a sequence its plan contains
    When the adapter streams the task
    Then the stream ends with end
    And a log record carries job_id, session_id, engine, engine_version, tokens_out and decode_time_ms
    And a log record carries tokens_in, pool_id and replica_id
    And no adapter log record carries a secret-shaped value
