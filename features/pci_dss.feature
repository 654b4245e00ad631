@pci_dss
Feature: PCI DSS: cardholder data in the payments service
  Card numbers are accepted over TLS only, never shown, logged or stored in clear, and
  every access to cardholder data is audited.

  @PCI-DSS-3.4 @PCI-DSS-3.2.2 @PCI-DSS-10.2.1
  Scenario: A card number never appears unencrypted in answers, logs or stored items
    Given the service runs in region eu-west-1
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And no card number appears in the answer, the logs or the stored payments
    And the audit trail of tenant acme records "POST /payments" with data class pci
    And the rule "PCI-DSS 3.4" held
    And the rule "PCI-DSS 3.2.2" held
    And the rule "PCI-DSS 10.2.1" held

  @PCI-DSS-10.2.1
  Scenario: Every payment and refund leaves a verifiable audit trail
    Given the service runs in region eu-west-1
    When tenant globex pays 500 EUR with card "5555 5555 5555 4444"
    And tenant globex refunds 200 of the last payment
    And tenant globex pays 700 EUR with card "4000 0566 5566 5556"
    Then the answer is 201
    And the audit chain of tenant globex verifies
    And the rule "PCI-DSS 10.2.1" held

  @PCI-DSS-4.2.1
  Scenario: A card number sent over plain HTTP is refused before the handler
    Given the service runs in region eu-west-1
    And the next request goes over plain HTTP
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 403
    And the rule "PCI-DSS 4.2.1" refused the request
    And the audit trail of tenant acme records a violation of "PCI-DSS 4.2.1"
    And the audit trail of tenant acme does not record "POST /payments"
    When tenant acme pays 1999 USD with card "4111 1111 1111 1111"
    Then the answer is 201
    And the rule "PCI-DSS 4.2.1" held

  @PCI-DSS-3.4
  Scenario: Another tenant cannot read or refund my payment
    Given the service runs in region eu-west-1
    When tenant acme pays 4200 EUR with card "4111 1111 1111 1111" for customer "Ada Lovelace"
    And tenant globex reads the last payment
    Then the answer is 404
    When tenant globex refunds 100 of the last payment
    Then the answer is 404
    And the data of tenant acme is intact
    And the answer does not contain "Ada Lovelace"
