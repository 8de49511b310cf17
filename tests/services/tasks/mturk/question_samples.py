# ruff: noqa: E501  (XML documents as requesters write them, one element a line)
"""Question documents as requesters write them (shared by the question, answer and flow tests)."""

from __future__ import annotations

SCHEMAS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas"

HTML_QUESTION = f"""<HTMLQuestion xmlns="{SCHEMAS}/2011-11-11/HTMLQuestion.xsd">
  <HTMLContent><![CDATA[<!DOCTYPE html><html><body>
    <form name="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">
      <input type="hidden" name="assignmentId" value=""/>
      <input name="label" type="text"/><input type="checkbox" name="tags" value="a"/>
      <input type="submit"/>
    </form></body></html>]]></HTMLContent>
  <FrameHeight>450</FrameHeight>
</HTMLQuestion>"""

EXTERNAL_QUESTION = f"""<?xml version="1.0" encoding="UTF-8"?>
<ExternalQuestion xmlns="{SCHEMAS}/2006-07-14/ExternalQuestion.xsd">
  <ExternalURL>https://tasks.example.org/hit?item=7&amp;lang=en</ExternalURL>
  <FrameHeight>0</FrameHeight>
</ExternalQuestion>"""


def question_form(version: str = "2017-11-06") -> str:
    return f"""<QuestionForm xmlns="{SCHEMAS}/{version}/QuestionForm.xsd">
  <Overview><Title>Colours</Title><Text>Answer about the picture.</Text></Overview>
  <Question>
    <QuestionIdentifier>colour</QuestionIdentifier>
    <DisplayName>Main colour</DisplayName>
    <IsRequired>true</IsRequired>
    <QuestionContent><Text>Which colour dominates?</Text></QuestionContent>
    <AnswerSpecification>
      <SelectionAnswer>
        <StyleSuggestion>radiobutton</StyleSuggestion>
        <Selections>
          <Selection><SelectionIdentifier>red</SelectionIdentifier><Text>Red</Text></Selection>
          <Selection><SelectionIdentifier>blue</SelectionIdentifier><Text>Blue</Text></Selection>
          <Selection><SelectionIdentifier>green</SelectionIdentifier><Text>Green</Text></Selection>
        </Selections>
      </SelectionAnswer>
    </AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>shapes</QuestionIdentifier>
    <QuestionContent><Text>Which shapes do you see?</Text></QuestionContent>
    <AnswerSpecification>
      <SelectionAnswer>
        <MinSelectionCount>1</MinSelectionCount>
        <MaxSelectionCount>2</MaxSelectionCount>
        <StyleSuggestion>checkbox</StyleSuggestion>
        <Selections>
          <Selection><SelectionIdentifier>circle</SelectionIdentifier><Text>Circle</Text></Selection>
          <Selection><SelectionIdentifier>square</SelectionIdentifier><Text>Square</Text></Selection>
          <OtherSelection><Constraints><Length minLength="2" maxLength="20"/></Constraints></OtherSelection>
        </Selections>
      </SelectionAnswer>
    </AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>count</QuestionIdentifier>
    <IsRequired>true</IsRequired>
    <QuestionContent><Text>How many objects?</Text></QuestionContent>
    <AnswerSpecification>
      <FreeTextAnswer>
        <Constraints>
          <IsNumeric minValue="0" maxValue="50"/>
          <AnswerFormatRegex regex="^[0-9]+$" errorText="Digits only, please."/>
        </Constraints>
        <DefaultText>0</DefaultText>
      </FreeTextAnswer>
    </AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>comment</QuestionIdentifier>
    <QuestionContent><FormattedContent><![CDATA[<p>Anything <b>else</b>?</p>]]></FormattedContent></QuestionContent>
    <AnswerSpecification>
      <FreeTextAnswer>
        <Constraints><Length maxLength="200"/><AnswerFormatRegex regex="ok" flags="i"/></Constraints>
        <NumberOfLinesSuggestion>3</NumberOfLinesSuggestion>
      </FreeTextAnswer>
    </AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>photo</QuestionIdentifier>
    <QuestionContent><Text>Upload a photo</Text></QuestionContent>
    <AnswerSpecification>
      <FileUploadAnswer>
        <MaxFileSizeInBytes>1000000</MaxFileSizeInBytes>
        <MinFileSizeInBytes>10</MinFileSizeInBytes>
      </FileUploadAnswer>
    </AnswerSpecification>
  </Question>
</QuestionForm>"""


QUESTION_FORM = question_form()

# A qualification test (QuestionForm) and its AnswerKey (the qualification tests).
TEST_FORM = f"""<QuestionForm xmlns="{SCHEMAS}/2017-11-06/QuestionForm.xsd">
  <Overview><Title>Bird test</Title></Overview>
  <Question>
    <QuestionIdentifier>q1</QuestionIdentifier>
    <IsRequired>true</IsRequired>
    <QuestionContent><Text>Which of these is a bird?</Text></QuestionContent>
    <AnswerSpecification><SelectionAnswer>
      <StyleSuggestion>radiobutton</StyleSuggestion>
      <Selections>
        <Selection><SelectionIdentifier>robin</SelectionIdentifier><Text>Robin</Text></Selection>
        <Selection><SelectionIdentifier>bat</SelectionIdentifier><Text>Bat</Text></Selection>
      </Selections>
    </SelectionAnswer></AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>q2</QuestionIdentifier>
    <QuestionContent><Text>Which of these fly?</Text></QuestionContent>
    <AnswerSpecification><SelectionAnswer>
      <MinSelectionCount>1</MinSelectionCount><MaxSelectionCount>3</MaxSelectionCount>
      <StyleSuggestion>checkbox</StyleSuggestion>
      <Selections>
        <Selection><SelectionIdentifier>crow</SelectionIdentifier><Text>Crow</Text></Selection>
        <Selection><SelectionIdentifier>bee</SelectionIdentifier><Text>Bee</Text></Selection>
        <Selection><SelectionIdentifier>cow</SelectionIdentifier><Text>Cow</Text></Selection>
      </Selections>
    </SelectionAnswer></AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>why</QuestionIdentifier>
    <QuestionContent><Text>Why do you want this qualification?</Text></QuestionContent>
    <AnswerSpecification><FreeTextAnswer/></AnswerSpecification>
  </Question>
</QuestionForm>"""

ANSWER_KEY = f"""<AnswerKey xmlns="{SCHEMAS}/2005-10-01/AnswerKey.xsd">
  <Question>
    <QuestionIdentifier>q1</QuestionIdentifier>
    <AnswerOption><SelectionIdentifier>robin</SelectionIdentifier><AnswerScore>10</AnswerScore></AnswerOption>
  </Question>
  <Question>
    <QuestionIdentifier>q2</QuestionIdentifier>
    <AnswerOption>
      <SelectionIdentifier>crow</SelectionIdentifier><SelectionIdentifier>bee</SelectionIdentifier>
      <AnswerScore>10</AnswerScore>
    </AnswerOption>
    <AnswerOption><SelectionIdentifier>crow</SelectionIdentifier><AnswerScore>5</AnswerScore></AnswerOption>
    <DefaultScore>1</DefaultScore>
  </Question>
  <QualificationValueMapping>
    <PercentageMapping><MaximumSummedScore>20</MaximumSummedScore></PercentageMapping>
  </QualificationValueMapping>
</AnswerKey>"""
