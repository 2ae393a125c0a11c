@dialect:tgi
Feature: TGI adapter
  The TGI adapter uses /generate_stream (or /generate), /info and /health and captures the
  engine version and model info.

  @OC-ADAPT-5040 @ORCH-3056
  Scenario: TGI uses /generate_stream, /info and /health
    Given a completion of 8 tokens for prompt "Hugging along"
    When the adapter's surface is inspected
    And the adapter streams the task
    Then health is live and ready
    And the engine saw requests on "/health" and one of "/info"
    And the generation request went to one of "/generate_stream,/generate" with stream true
    And the stream ends with end

  @OC-ADAPT-5050 @ORCH-3056
  Scenario: TGI engine_version and model info come from /info
    Given a completion of 4 tokens for prompt "Which version are you"
    When the adapter's surface is inspected
    And the adapter streams the task
    And the adapter's surface is inspected
    Then engine_version names the engine's own version
    And capabilities name the engine and its version

  @OC-ADAPT-5040 @ADAPT-3000
  Scenario: TGI passes the task's engine parameters through
    Given a completion of 24 tokens for prompt "Sample, do not be greedy"
    And the task passes engine parameters '{"parameters": {"do_sample": true, "top_k": 7}}'
    When the adapter streams the task
    Then the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason
