@hipaa
Feature: HIPAA: access to electronic protected health information
  Health records are stored encrypted, read only by authorised users, always audited, and
  travel only over TLS.

  @HIPAA-164.312-b @HIPAA-164.312-a-1
  Scenario: Every read of PHI leaves an audit entry and PHI is encrypted at rest
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-1 with diagnosis "J45.909"
    Then the answer is 201
    When tenant clinic reads the records of patient p-1
    Then the answer is 200
    And no stored item contains "J45.909"
    And the audit trail of tenant clinic records "records.read" with data class phi
    And the rule "HIPAA 164.312(b)" held
    And the rule "HIPAA 164.312(a)(1)" held

  @HIPAA-164.312-e-1
  Scenario: PHI sent over plain HTTP is refused before the handler
    Given the service runs in region us-east-1
    And the next request goes over plain HTTP
    When tenant clinic stores a record for patient p-2 with diagnosis "E11.9"
    Then the answer is 403
    And the rule "HIPAA 164.312(e)(1)" refused the request
    And the audit trail of tenant clinic records a violation of "HIPAA 164.312(e)(1)"
    When tenant clinic stores a record for patient p-2 with diagnosis "E11.9"
    Then the answer is 201
    And the rule "HIPAA 164.312(e)(1)" held

  @HIPAA-164.312-a-1
  Scenario: An unauthenticated caller gets no PHI
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-3 with diagnosis "I10"
    And an anonymous caller reads the records of patient p-3
    Then the answer is 401
    And the answer does not contain "I10"

  @HIPAA-164.312-a-1
  Scenario: PHI read by an unauthorised role gets 403
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-4 with diagnosis "F32.9"
    Given users of tenant clinic have roles "billing" and scopes "payments:read"
    When tenant clinic reads the records of patient p-4
    Then the answer is 403
    And the answer does not contain "F32.9"
    And the audit trail of tenant clinic records "GET /patients/:id/records" as denied
