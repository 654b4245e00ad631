@gdpr
Feature: GDPR: personal data of people in the EU
  EU personal data is processed only where transfers are permitted, kept out of logs, and
  erased on request with an audit entry.

  @GDPR-Art.44
  Scenario: An EU customer's data is refused in us-east-1
    Given the service runs in region us-east-1
    When tenant acme pays for a customer in DE
    Then the answer is 451
    And the rule "GDPR Art. 44" refused the request

  @GDPR-Art.44 @GDPR-Art.32
  Scenario: An EU customer's data is processed in eu-west-1 and kept out of the logs
    Given the service runs in region eu-west-1
    When tenant acme pays for a customer in FR
    Then the answer is 201
    And the rule "GDPR Art. 44" held
    And the rule "GDPR Art. 32" held

  @GDPR-Art.32
  Scenario: Personal data in free text is not logged in clear
    Given the service runs in region eu-west-1
    When tenant acme pays 300 EUR with card "4111 1111 1111 1111" described as "call Ada on Ada.Lovelace@Example.COM"
    Then the answer is 201
    And the rule "GDPR Art. 32" held

  @GDPR-Art.17
  Scenario: Erasure removes a subject's personal data and leaves an audit entry
    Given the service runs in region eu-west-1
    When tenant acme pays for a customer in DE
    And tenant acme pays 300 EUR with card "4111 1111 1111 1111" described as "call Ada on Ada.Lovelace@Example.COM"
    And tenant acme refunds 100 of the last payment
    And tenant acme erases customer cus_1
    Then the answer is 200
    And no stored payment of tenant acme names customer cus_1
    And the audit trail of tenant acme records "DELETE /customers/:id" with data class pii
    And the rule "GDPR Art. 17" held
