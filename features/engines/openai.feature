@dialect:openai
Feature: OpenAI adapter
  The OpenAI adapter maps submit to the streaming Chat/Completions API, one token per delta,
  with bounded timeouts, retries before the first byte and redacted keys.

  @OC-ADAPT-OAI-6000 @black-box
  Scenario: OpenAI adapter implements the whole WorkerAdapter surface
    Given a completion of 4 tokens for prompt "Before and after"
    When the adapter's surface is inspected
    And the adapter streams the task
    And the adapter's surface is inspected
    Then it implements the WorkerAdapter protocol
    And health is live and ready
    And engine_version is a non-empty stable string

  @OC-ADAPT-OAI-6001 @OC-ADAPT-OAI-6011
  Scenario: OpenAI deltas become token events in order
    Given a completion of 16 tokens for prompt "Delta by delta"
    When the adapter streams the task
    Then the generation request went to one of "/v1/chat/completions,/v1/completions,/v1/responses" with stream true
    And the stream follows the contract grammar
    And there is one token event per upstream content delta
    And the tokens reproduce the generation plan

  @OC-ADAPT-OAI-6001 @ADAPT-3000
  Scenario Outline: OpenAI streams a task through the <endpoint> endpoint
    Given a completion of 12 tokens for prompt "Talk to the API"
    And the task asks for the <endpoint> endpoint
    When the adapter streams the task
    Then the generation request went to "<path>" with stream true
    And the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

    Examples:
      | endpoint    | path                 |
      | chat        | /v1/chat/completions |
      | completions | /v1/completions      |

  @OC-ADAPT-OAI-6001 @ADAPT-3000
  Scenario: OpenAI passes the task's engine parameters through
    Given a completion of 24 tokens for prompt "Warm it up a little"
    And the task passes engine parameters '{"temperature": 0.4, "top_p": 0.9}'
    When the adapter streams the task
    Then the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

  @OC-ADAPT-OAI-6002
  Scenario: OpenAI retries a 503 before the first byte with capped jitter
    Given a completion of 8 tokens for prompt "Try again"
    And the engine injects "http.503;first=1"
    When the adapter streams the task
    Then the stream ends with end
    And the engine received 2 generation requests
    And the retries were spaced within the capped jitter bounds

  @OC-ADAPT-OAI-6003
  Scenario: OpenAI endpoints are never exposed by the adapter
    Given a completion of 8 tokens for prompt "Stay behind the adapter"
    When the adapter streams the task
    And the adapter's surface is inspected
    Then the stream ends with end
    And the adapter exposes nothing beyond the WorkerAdapter contract

  @OC-ADAPT-OAI-6010
  Scenario: OpenAI engine_version is the upstream model string
    When the adapter's surface is inspected
    Then engine_version names the upstream model

  @OC-ADAPT-OAI-6020 @needs:api_key
  Scenario: OpenAI API keys are redacted even when the engine echoes them
    Given a completion of 8 tokens for prompt "Wrong key"
    And the adapter is configured with API key "sk-llorch-openai-echo-0123456789"
    And the engine injects "http.401"
    When the adapter streams the task
    Then the stream ends with error code "INTERNAL" and retriable false
    And no log record, error message or event contains the API key
    And no error-level log record carries request headers

  @OC-ADAPT-OAI-6021
  Scenario: OpenAI egress uses no proxy from the environment
    Given a completion of 8 tokens for prompt "Go direct"
    And the environment holds credentials and a proxy
    When the adapter streams the task
    Then the stream ends with end
    And the engine received none of the environment's credentials

  @OC-ADAPT-OAI-6030
  Scenario: OpenAI logs its retries and maps upstream codes
    Given a completion of 8 tokens for prompt "Log the retry"
    And the engine injects "http.503;first=1"
    When the adapter streams the task
    Then the stream ends with end
    And a log record mentions the retry

  @OC-ADAPT-OAI-6031
  Scenario: OpenAI logs latency and token counts
    Given a completion of 8 tokens for prompt "Count and time"
    When the adapter streams the task
    Then a log record carries job_id, session_id, engine, engine_version, tokens_out and decode_time_ms
    And the metrics event reports latency and token counts
