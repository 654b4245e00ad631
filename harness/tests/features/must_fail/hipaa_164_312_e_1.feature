@hipaa
Feature: must fail when a service accepts health data over plain HTTP (HIPAA 164.312(e)(1))

  @HIPAA-164.312-e-1
  Scenario: a health record sent over plain HTTP is refused before the handler
    Given the service runs in region eu-west-1
    And the next request goes over plain HTTP
    When tenant clinic stores a record for patient p-1 with diagnosis "J45.909"
    Then the answer is 403
    And the rule "HIPAA 164.312(e)(1)" refused the request
    And the audit trail of tenant clinic records a violation of "HIPAA 164.312(e)(1)"
