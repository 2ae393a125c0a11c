Feature: The determinism seed corpus
  The harness keeps a stable corpus of at least 64 seeds; every seed gives the same plan twice.

  @OC-TEST-7003 @per-run
  Scenario: The seed corpus has at least 64 stable seeds
    Then the seed corpus has at least 64 distinct seeds
    And every corpus seed gives the same generation plan twice
