Feature: The cross-dialect oracle
  One generation plan, rendered by every mock dialect, must come out of every adapter as the same
  normalised events: text, indices, tokens_out and stop reason.

  @ADAPT-3001 @WA-INT-3001
  Scenario Outline: The end event reports the plan's stop reason (<why>)
    Given a completion of <n> tokens for prompt "<prompt>"
    When the adapter streams the task
    Then the stream follows the contract grammar
    And the tokens reproduce the generation plan
    And the end event reports the plan's token count and stop reason

    Examples:
      | why              | n    | prompt                         |
      | length           | 3    | Stop me early                  |
      | natural end      | 2000 | Say what you have to say       |

  @ADAPT-3001 @WA-INT-3001 @per-run
  Scenario: Every selected adapter yields the same normalised events for one plan
    Given a completion of 24 tokens for prompt "One plan for everybody"
    When every selected adapter streams the task against its own mock engine
    Then all adapters yield the same normalised events
