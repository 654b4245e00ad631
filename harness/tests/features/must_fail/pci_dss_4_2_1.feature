@pci_dss
Feature: must fail when a service accepts a card number over plain HTTP (PCI-DSS 4.2.1)

  @PCI-DSS-4.2.1
  Scenario: a card number sent over plain HTTP is refused before the handler
    Given the service runs in region eu-west-1
    And the next request goes over plain HTTP
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 403
    And the rule "PCI-DSS 4.2.1" refused the request
    And the audit trail of tenant acme records a violation of "PCI-DSS 4.2.1"
