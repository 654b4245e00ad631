@pci_dss
Feature: PCI DSS: cardholder data in the payments service
  Card numbers are accepted over TLS, never shown, logged or stored in clear, and every
  access to cardholder data is audited.

  @PCI-DSS-3.4 @PCI-DSS-10.2.1
  Scenario: A card number never appears unencrypted in answers, logs or stored items
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And no card number appears in the answer, the logs or the stored payments
    And the audit trail of tenant acme records "POST /payments" with data class pci
    And the rule "PCI-DSS 3.4" was never violated

  @PCI-DSS-10.2.1
  Scenario: Every payment leaves a verifiable audit trail
    Given the service runs in region eu-west-1
    When tenant globex pays 500 EUR with card "5555 5555 5555 4444"
    And tenant globex pays 700 EUR with card "4000 0566 5566 5556"
    Then the audit chain of tenant globex verifies
    And the rule "PCI-DSS 10.2.1" was never violated
