@hipaa
Feature: HIPAA: access to electronic protected health information
  Reads of ePHI are audited and only answered to authenticated users.

  @HIPAA-164.312-b
  Scenario: Every read of PHI leaves an audit entry
    Given the service runs in region us-east-1
    When tenant clinic reads the records of patient p-1
    Then the answer is 200
    And the audit trail of tenant clinic records "records.read" with data class phi
    And the rule "HIPAA 164.312(b)" was never violated

  @HIPAA-164.312-a-1
  Scenario: An unauthenticated caller gets no PHI
    Given the service runs in region us-east-1
    When an anonymous caller reads the records of patient p-1
    Then the answer is 401
    And the rule "HIPAA 164.312(a)(1)" was never violated
