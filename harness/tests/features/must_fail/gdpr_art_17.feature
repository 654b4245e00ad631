@gdpr
Feature: must fail when an erasure erases nothing (GDPR Art. 17)

  @GDPR-Art.17
  Scenario: an erasure removes the subject's personal data and is audited
    Given the service runs in region eu-west-1
    When tenant acme pays for a customer in DE
    And tenant acme erases customer cus_1
    Then the answer is 200
    And no stored payment of tenant acme names customer cus_1
    And the rule "GDPR Art. 17" held
