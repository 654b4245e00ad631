@pci_dss
Feature: must fail when a handler answers the card verification code (PCI-DSS 3.2.2)

  @PCI-DSS-3.2.2
  Scenario: a card verification code is never answered
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And the rule "PCI-DSS 3.2.2" held
