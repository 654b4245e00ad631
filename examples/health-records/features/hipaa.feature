@hipaa
Feature: HIPAA: access to electronic protected health information
  Health records (the health-records service) are stored encrypted, read only by authorised
  users and only as much as their role needs, always audited, accounted for to the patient,
  and travel only over TLS.

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
    Given users of tenant clinic have roles "billing" and scopes "billing:read"
    When tenant clinic reads the records of patient p-4
    Then the answer is 403
    And the answer does not contain "F32.9"
    And the audit trail of tenant clinic records "GET /patients/:id/records" as denied

  @HIPAA-164.312-a-1
  Scenario: PHI read with the read scope by a role outside the access table gets 403
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-10 with diagnosis "F32.9" and notes "low mood for months"
    Given users of tenant clinic have roles "receptionist" and scopes "records:read"
    When tenant clinic reads the records of patient p-10
    Then the answer is 403
    And the answer does not contain "F32.9"
    And the audit trail of tenant clinic records "records.read" as denied
    Given the next request carries header "x-break-glass-reason" with value "patient unconscious in the emergency room"
    When tenant clinic reads the records of patient p-10
    Then the answer is 403
    And the answer does not contain "low mood for months"
    And the audit trail of tenant clinic does not record "threat.incident"

  @HIPAA-164.312-a-1
  Scenario: Another tenant's patient reads as not there
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-11 with diagnosis "J45.909"
    Then the answer is 201
    When tenant other-clinic reads the records of patient p-11
    Then the answer is 404
    And the answer does not contain "J45.909"
    And the rule "HIPAA 164.312(a)(1)" was never violated

  @HIPAA-164.312-a-1 @HIPAA-164.312-b
  Scenario: Minimum necessary: billing sees the codes, never the clinician's notes
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-5 with diagnosis "J45.909" and notes "wheezing since the move"
    Then the answer is 201
    Given users of tenant clinic have roles "billing" and scopes "records:read"
    When tenant clinic reads the records of patient p-5
    Then the answer is 200
    And the answer contains "J45.909"
    And the answer does not contain "wheezing since the move"
    And the answer does not contain "salbutamol"
    And no stored item contains "wheezing since the move"
    And the rule "HIPAA 164.312(b)" held

  @HIPAA-164.312-a-1
  Scenario: A patient reads their own record and no other, which reads as not there
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-6 with diagnosis "E11.9"
    And tenant clinic stores a record for patient p-7 with diagnosis "F41.1"
    And patient p-6 of tenant clinic reads the records of patient p-6
    Then the answer is 200
    And the answer contains "E11.9"
    When patient p-6 of tenant clinic reads the records of patient p-7
    Then the answer is 404
    And the answer does not contain "F41.1"
    When patient p-6 of tenant clinic reads the records of patient p-404
    Then the answer is 404
    And the rule "HIPAA 164.312(a)(1)" held

  @HIPAA-164.312-a-1 @HIPAA-164.312-b
  Scenario: Break-glass access needs a stated reason, is audited, raises an alert and is disclosed
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-8 with diagnosis "I21.9" and notes "chest pain on arrival"
    Given users of tenant clinic have roles "billing" and scopes "records:read"
    And the next request carries header "x-break-glass-reason" with value "urgent"
    When tenant clinic reads the records of patient p-8
    Then the answer is 403
    And the answer does not contain "chest pain on arrival"
    Given the next request carries header "x-break-glass-reason" with value "patient unconscious in the emergency room"
    When tenant clinic reads the records of patient p-8
    Then the answer is 200
    And the answer contains "chest pain on arrival"
    And a threat incident was recorded for tenant clinic
    And the rule "HIPAA 164.312(b)" held
    When patient p-8 of tenant clinic lists the disclosures of their record
    Then the answer is 200
    And the answer contains "patient unconscious in the emergency room"
    And the answer contains "break-glass"
    And the answer contains "user@clinic"
    And the audit chain of tenant clinic verifies

  @HIPAA-164.312-b
  Scenario: Accounting of disclosures: the patient sees who read their record, when and why
    Given the service runs in region us-east-1
    When tenant clinic stores a record for patient p-9 with diagnosis "J45.909"
    And tenant clinic reads the records of patient p-9
    Then the answer is 200
    When patient p-9 of tenant clinic lists the disclosures of their record
    Then the answer is 200
    And the answer contains "user@clinic"
    And the answer contains "treatment"
    And the answer does not contain "J45.909"
    When patient p-6 of tenant clinic lists the disclosures of their record
    Then the answer is 200
    And the answer does not contain "user@clinic"
