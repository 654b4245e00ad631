@soc2
Feature: must fail when a failure is answered without an error log (SOC2 CC7.2)

  @SOC2-CC7.2
  Scenario: a 5xx answer is logged as an error
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    And tenant acme reads the last payment
    Then the answer is 500
    And the rule "SOC2 CC7.2" held
