Feature: Worker registration on the orchestrator facade needs the API token
  Registering an engine binds it as a replica that will receive tasks: that is never open to
  anonymous callers, not even on loopback with optional auth (AUTH-1003).

  @AUTH-1003 @AUTH-1008
  Scenario: Only a caller with the API token can register a worker
    Given the adapter is served through the orchestrator facade
    And the orchestrator facade requires a bearer token
    When a worker registers without a token, with a wrong token and with the token
    Then only the registration with the token was accepted
    And the accepted registration names its caller by token fingerprint only
