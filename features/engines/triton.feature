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
    When the adapter's surface is inspected
    Then engine_version names the engine's own version
