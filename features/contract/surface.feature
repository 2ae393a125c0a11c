Feature: The WorkerAdapter surface
  health, props, capabilities, engine_version, submit and cancel, in-process, with the contract's
  types: no network hop between the caller and the adapter, nothing beyond the contract exposed.

  @ADAPT-3000 @ORCH-3620 @black-box
  Scenario: The adapter implements the WorkerAdapter protocol in-process
    Given a completion of 8 tokens for prompt "Before and after"
    When the adapter's surface is inspected
    And the adapter streams the task
    And the adapter's surface is inspected
    Then it implements the WorkerAdapter protocol
    And health is live and ready
    And props report slot counts as integers or nothing
    And engine_version is a non-empty stable string
    And capabilities name the engine and its version

  @ADAPT-3000
  Scenario: A loading engine is live but not ready
    Given the engine injects "engine.loading"
    When the adapter's health is queried
    Then health is not ready

  @ADAPT-3001 @ADAPT-3004 @black-box
  Scenario: Metrics events, when present, sit between started and the terminal event
    Given a completion of 8 tokens for prompt "Measure me"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And every metrics event carries only numbers
