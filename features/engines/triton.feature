@dialect:triton
Feature: Triton adapter
  The Triton adapter uses the KServe v2 health and metadata routes and the generate_stream
  extension, and reports the server version.

  @OC-ADAPT-5060 @ORCH-3057
  Scenario: Triton health, metadata and streaming infer
    Given a completion of 8 tokens for prompt "Inference at scale"
    When the adapter's surface is inspected
    And the adapter streams the task
    Then health is live and ready
    And the engine saw requests on "/v2/health/ready" and one of "/v2,/v2/models/mock"
    And the generation request went to a path containing "generate_stream" with stream true
    And the stream ends with end

  @OC-ADAPT-5070 @ORCH-3057
  Scenario: Triton engine_version comes from the server metadata
    Given a completion of 4 tokens for prompt "Which version are you"
    When the adapter's surface is inspected
    And the adapter streams the task
    And the adapter's surface is inspected
    Then engine_version names the engine's own version

  @OC-ADAPT-5060 @ADAPT-3000
  Scenario: Triton passes the task's engine parameters through
    Given a completion of 120 tokens for prompt "Keep going past the end"
    And the task passes engine parameters '{"parameters": {"ignore_eos": true}}'
    When the adapter streams the task
    Then the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason
