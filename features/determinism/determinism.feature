Feature: Determinism across runs and replicas
  Same inputs, seed and sampler profile give byte-identical token streams, on one replica and
  across two replicas of the same engine; the adapter asks the engine for deterministic sampling
  and reports the signals (engine_version, seed, sampler profile) in its started event.

  @WA-INT-3006 @OC-TEST-7001
  Scenario: Two replicas stream byte-identical tokens for the same seeded task
    Given a completion of 24 tokens for prompt "Repeat after me"
    And the task carries a seed of its own
    When the task is streamed on two replicas of the engine
    Then both replicas produced identical token streams

  @WA-INT-3006 @black-box
  Scenario: The same seeded task twice gives the same tokens
    Given a completion of 16 tokens for prompt "Once more"
    And the task carries a seed of its own
    When the adapter streams the task
    And the adapter streams the task again without faults
    Then both runs produced identical token streams

  @OC-TEST-7002
  Scenario: The adapter asks the engine for deterministic sampling
    Given a completion of 8 tokens for prompt "Be greedy"
    And the task carries a seed of its own
    And the task asks for strict determinism
    When the adapter streams the task
    Then the engine request carries the determinism settings

  @ADAPT-3003 @black-box
  Scenario: The started event carries the determinism signals
    Given a completion of 8 tokens for prompt "Sign here"
    And the task carries a seed of its own
    And the task names sampler profile "v1"
    When the adapter streams the task
    Then the determinism signals are reported
