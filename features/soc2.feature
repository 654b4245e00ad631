@soc2
Feature: SOC 2: access, confidentiality, integrity of the audit trail and detection

  @SOC2-CC6.1 @SOC2-CC6.7
  Scenario: Protected resources answer authenticated callers and disclose no secret
    Given the service runs in region eu-west-1
    When tenant acme pays 1500 GBP with card "4111 1111 1111 1111"
    And tenant acme lists payments with query "limit=5&customer=cus_1"
    Then the answer is 200
    And the rule "SOC2 CC6.1" held
    And the rule "SOC2 CC6.7" held

  @SOC2-CC7.2
  Scenario: A failure is answered 500 and logged as an error
    Given the service runs in region eu-west-1
    When tenant clinic stores a record for patient p-9 with diagnosis "J45.909"
    And the stored records of patient p-9 are corrupted
    And tenant clinic reads the records of patient p-9
    Then the answer is 500
    And the answer does not contain "J45.909"
    And the rule "SOC2 CC7.2" held

  @SOC2-CC7.2
  Scenario: A tampered audit entry is detected
    Given the service runs in region eu-west-1
    When tenant acme pays 1200 GBP with card "4111 1111 1111 1111"
    And tenant acme pays 1300 GBP with card "4111 1111 1111 1111"
    And the stored audit entry 1 of tenant acme is altered
    Then the audit chain of tenant acme is broken at entry 1

  @SOC2-CC6.1
  Scenario: A request carrying SQL injection is blocked and an incident is recorded
    Given the service runs in region eu-west-1
    When tenant acme looks up payment "1' OR '1'='1' UNION SELECT card FROM payments --"
    Then the answer is 403
    And a threat incident was recorded for tenant acme
