@soc2
Feature: must fail when a handler discloses a secret (SOC2 CC6.7)

  @SOC2-CC6.7
  Scenario: no secret is ever answered
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And the rule "SOC2 CC6.7" held
