@pci_dss
Feature: must fail when a service is built without the audit layer (PCI-DSS 10.2.1)

  @PCI-DSS-10.2.1
  Scenario: a payment with a card number leaves a stored audit entry
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And the rule "PCI-DSS 10.2.1" held
    And the audit trail of tenant acme records "POST /payments" with data class pci
