@dialect:mock
Feature: The mock adapter
  The in-process mock adapter stays available and injects the named faults of the mock engines,
  so orchestrator code can be exercised without sockets.

  @ORCH-3058
  Scenario: The mock adapter remains and injects named faults
    Given a completion of 8 tokens for prompt "Fake it"
    And the engine injects "midstream.disconnect;after_events=2"
    When the adapter streams the task
    Then the mock adapter is one of the built-in adapters
    And the stream follows the contract grammar
    And the stream ends with error code "WORKER_RESET" and retriable true
