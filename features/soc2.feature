@soc2
Feature: SOC 2: integrity of the audit trail and protection against attacks

  @SOC2-CC7.2 @SOC2-CC4.1
  Scenario: A tampered audit entry is detected
    Given the service runs in region eu-west-1
    When tenant acme pays 1200 GBP with card "4111 1111 1111 1111"
    And tenant acme pays 1300 GBP with card "4111 1111 1111 1111"
    And the stored audit entry 1 of tenant acme is altered
    Then the audit chain of tenant acme is broken at entry 1

  @SOC2-CC6.6 @SOC2-CC7.3
  Scenario: A request carrying SQL injection is blocked and an incident is recorded
    Given the service runs in region eu-west-1
    When tenant acme looks up payment "1' OR '1'='1' UNION SELECT card FROM payments --"
    Then the answer is 403
    And a threat incident was recorded for tenant acme
