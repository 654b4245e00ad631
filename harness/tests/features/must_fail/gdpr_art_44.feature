@gdpr
Feature: must fail when a service processes EU personal data outside the EU (GDPR Art. 44)

  @GDPR-Art.44
  Scenario: EU personal data is processed in an EU region
    Given the service runs in region eu-west-1
    When tenant acme pays for a customer in DE
    Then the answer is 201
    And the rule "GDPR Art. 44" held
