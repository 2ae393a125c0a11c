Feature: The rbee worker HTTP API
  Any WorkerAdapter served as an rbee worker (llorch-conformance worker) answers the worker API
  of the rbee worker contract: /health, /info, /v1/infer with JSON and SSE answers, and errors
  {error} with 400 for bad input. Judged by the same black-box checks as worker-check.

  @WKR-1001 @WKR-1002 @WKR-1009 @black-box
  Scenario: Health and info of a served worker
    Given the adapter is served as an rbee worker reporting to a mock queen
    Then GET /health answers 200 text/plain "ok"
    And GET /info answers a WorkerInfo with every field and a known status

  @WKR-1003 @WKR-1004 @black-box
  Scenario: Inference answers JSON, or SSE token frames ending with [DONE]
    Given the adapter is served as an rbee worker reporting to a mock queen
    Then a non-streaming inference answers an InferResponse
    And a streaming inference sends data: {"token"} frames and ends with data: [DONE]

  @WKR-1005 @WKR-1006 @black-box
  Scenario: Every malformed InferRequest is refused with 400
    Given the adapter is served as an rbee worker reporting to a mock queen
    Then every malformed InferRequest is answered 400 with an error body

  @WKR-1005 @WKR-1006 @black-box
  Scenario Outline: Bad input to the worker: <case>
    Given the adapter is served as an rbee worker reporting to a mock queen
    When the worker is sent the request <body>
    Then the worker answers 400 with an error body
    And the worker still answers /health

    Examples:
      | case                 | body                                      |
      | missing prompt       | {"max_tokens": 8}                         |
      | prompt of wrong type | {"prompt": ["a", "b"]}                    |
      | max_tokens too large | {"prompt": "hi", "max_tokens": 4097}      |
      | not JSON             | {"prompt": "hi"                           |

  @WKR-1011 @black-box
  Scenario: An oversized body is refused and the worker keeps serving
    Given the adapter is served as an rbee worker reporting to a mock queen
    When the worker is sent a request body of 2000000 bytes
    Then the worker answers 400 with an error body
    And the worker still answers /health

  @WKR-1005 @WKR-1009
  Scenario: A saturated worker is busy and refuses with 503
    Given the worker has 1 slot
    And the worker's engine injects "stall.midstream;after_events=2;delay_ms=4000"
    And the adapter is served as an rbee worker reporting to a mock queen
    Then a saturated worker reports busy, refuses with 503 and returns to ready

  @WKR-1015
  Scenario: A failure after the first token becomes one error frame without [DONE]
    Given the worker's engine injects "midstream.disconnect;after_events=3"
    And the adapter is served as an rbee worker reporting to a mock queen
    When the worker streams a completion
    Then the stream has token frames, then one error frame and no [DONE]

  @WKR-1015 @WKR-1005
  Scenario: A failure before the first token is an HTTP error
    Given the worker's engine injects "http.500"
    And the adapter is served as an rbee worker reporting to a mock queen
    When the worker is sent the request {"prompt": "hi", "max_tokens": 4}
    Then the worker answers 503 with an error body
