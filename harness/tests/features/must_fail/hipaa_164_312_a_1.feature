@hipaa
Feature: must fail when a service answers health data to anyone (HIPAA 164.312(a)(1))

  @HIPAA-164.312-a-1
  Scenario: ePHI is answered only to an authenticated caller
    Given the service runs in region eu-west-1
    When tenant clinic stores a record for patient p-1 with diagnosis "J45.909"
    And tenant clinic pays 8000 EUR with card "4111 1111 1111 1111" described as "physiotherapy"
    And an anonymous caller reads the last payment
    Then the answer is 401
    And the answer does not contain "physiotherapy"
    And the rule "HIPAA 164.312(a)(1)" held
