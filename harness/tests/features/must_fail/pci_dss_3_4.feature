@pci_dss
Feature: must fail when a handler logs or stores a card number (PCI-DSS 3.4)

  @PCI-DSS-3.4
  Scenario: a card number never reaches the logs or the stored items in clear
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And the rule "PCI-DSS 3.4" held
    And no card number appears in the answer, the logs or the stored payments
