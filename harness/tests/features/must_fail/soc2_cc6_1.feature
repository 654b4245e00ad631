@soc2
Feature: must fail when a protected route answers anonymous callers (SOC2 CC6.1)

  @SOC2-CC6.1
  Scenario: a protected route answers only authenticated callers
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    And an anonymous caller reads the last payment
    Then the answer is 401
    And the rule "SOC2 CC6.1" held
