#!/usr/bin/env python3
# Prints each failed test of a .trx file with the first lines of its message and the FastXtr frames of its stack,
# so that the end of scripts/test.sh (which is what a CI log keeps) names what failed. Usage: trx-failures.py FILE
import sys, xml.etree.ElementTree as ET
ns = {'t': 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010'}
root = ET.parse(sys.argv[1]).getroot()
for r in root.iterfind('.//t:UnitTestResult', ns):
    if r.get('outcome') in ('Passed', 'NotExecuted'):
        continue
    msg = r.find('.//t:ErrorInfo/t:Message', ns)
    text = (msg.text or '').strip() if msg is not None else ''
    print(f"FAILED {r.get('testName')} ({r.get('outcome')}, {r.get('duration')})")
    for line in text.splitlines()[:12]:
        print(f"    {line}")
    st = r.find('.//t:ErrorInfo/t:StackTrace', ns)
    if st is not None and st.text:
        for line in [l for l in st.text.strip().splitlines() if 'FastXtr' in l][:4]:
            print(f"    {line.strip()}")
