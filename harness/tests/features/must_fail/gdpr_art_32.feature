@gdpr
Feature: must fail when a handler logs an email address (GDPR Art. 32)

  @GDPR-Art.32
  Scenario: personal data never reaches the logs in clear
    Given the service runs in region eu-west-1
    When tenant acme pays for a customer in FR
    Then the answer is 201
    And the rule "GDPR Art. 32" held
