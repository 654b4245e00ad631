@hipaa
Feature: must fail when a service is built without the audit layer (HIPAA 164.312(b))

  @HIPAA-164.312-b
  Scenario: storing a health record leaves a stored audit entry of class phi
    Given the service runs in region eu-west-1
    When tenant clinic stores a record for patient p-1 with diagnosis "J45.909"
    Then the answer is 201
    And the rule "HIPAA 164.312(b)" held
    And the audit trail of tenant clinic records "records.write" with data class phi
