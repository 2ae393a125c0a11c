Feature: Secrets never leak and configuration is explicit
  An API key given to the adapter is sent to the engine and nowhere else: not in logs at any
  level, not in error messages, not in events. The adapter reads no credentials or proxies from
  the environment.

  @WA-INT-3005 @HTU-1004 @HTU-SEC-1402 @HTU-EXP-1104 @ORCH-3613 @HTU-ERR-4001 @needs:api_key
  Scenario: A configured API key never appears in logs, errors or events
    Given a completion of 8 tokens for prompt "Keep a secret"
    And the adapter is configured with API key "sk-llorch-test-0123456789abcdef"
    And the engine injects "http.401"
    When the adapter streams the task
    And the adapter streams the task again without faults
    Then the stream ends with end
    And no log record, error message or event contains the API key

  @HTU-1005 @HTU-EXP-1101 @needs:api_key
  Scenario: A configured API key is sent as a Bearer token, the environment is ignored
    Given a completion of 8 tokens for prompt "Who am I"
    And the adapter is configured with API key "sk-llorch-test-configured-key"
    And the environment holds credentials and a proxy
    When the adapter streams the task
    Then the stream ends with end
    And the engine received the API key as a Bearer token
    And the engine received none of the environment's credentials

  @HTU-1005 @HTU-EXP-1101 @HTU-SEC-1401 @HTU-SEC-1402
  Scenario: Without a configured key nothing is sent and environment proxies are not used
    Given a completion of 8 tokens for prompt "Anonymous"
    And the adapter is configured without an API key
    And the environment holds credentials and a proxy
    When the adapter streams the task
    Then the stream ends with end
    And the engine received no Authorization header
    And the engine received none of the environment's credentials
    And no adapter log record carries a secret-shaped value

  @HTU-SEC-1401 @HTU-EXP-1105 @HTU-1001 @needs:tls
  Scenario: TLS verification is on: an untrusted engine certificate is refused
    Given a completion of 8 tokens for prompt "Trust me"
    And the engine serves TLS with a certificate the adapter does not trust
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with an error event
    And the engine received 0 generation requests

  @HTU-SEC-1401 @HTU-EXP-1105 @needs:tls
  Scenario: TLS works when the test trusts the engine's certificate explicitly
    Given a completion of 8 tokens for prompt "Trust me now"
    And the engine serves TLS with a certificate the adapter trusts explicitly
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the stream ends with end
