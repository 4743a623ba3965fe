import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * `npm run lint:size`: no file in `src/` over 250 lines and no function over 60 (issue 11). A
 * function's size is the line span of its node, from its first token to its closing brace, so a
 * closure counts for itself and again inside the function that holds it: a long closure makes its
 * parent long too, which is the point (the parent is what a reader has to hold in their head).
 */

export const MAX_FILE_LINES = 250;
export const MAX_FUNCTION_LINES = 60;

export interface SizeViolation {
  file: string;
  line: number;
  what: string;
  lines: number;
  limit: number;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFilesUnder(path);
    return entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function lineCount(text: string): number {
  if (text === '') return 0;
  const lines = text.split('\n').length;
  return text.endsWith('\n') ? lines - 1 : lines;
}

function functionName(node: ts.FunctionLikeDeclaration): string {
  if (node.name) return node.name.getText();
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  // `const f = () => ...` and `{ f: () => ... }` take the name they are bound to.
  const parent = node.parent;
  if ((ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) && parent.name) {
    return parent.name.getText();
  }
  return ts.isArrowFunction(node) ? '<arrow>' : '<function>';
}

function isFunctionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  );
}

/** The size violations in one source text; pure, so a test can feed it a string. */
export function checkSource(file: string, text: string): SizeViolation[] {
  const violations: SizeViolation[] = [];
  const fileLines = lineCount(text);
  if (fileLines > MAX_FILE_LINES) {
    violations.push({ file, line: 1, what: 'file', lines: fileLines, limit: MAX_FILE_LINES });
  }
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lineOf = (pos: number): number => source.getLineAndCharacterOfPosition(pos).line + 1;
  const visit = (node: ts.Node): void => {
    // Overload signatures and abstract methods have no body and so no size.
    if (isFunctionLike(node) && node.body) {
      const start = lineOf(node.getStart(source));
      const lines = lineOf(node.getEnd()) - start + 1;
      if (lines > MAX_FUNCTION_LINES) {
        violations.push({
          file,
          line: start,
          what: `function ${functionName(node)}`,
          lines,
          limit: MAX_FUNCTION_LINES,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return violations;
}

export function checkTree(dir: string): SizeViolation[] {
  return tsFilesUnder(dir)
    .sort()
    .flatMap((path) => checkSource(relative(ROOT, path), readFileSync(path, 'utf8')));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const violations = checkTree(join(ROOT, 'src'));
  for (const v of violations) {
    process.stdout.write(`${v.file}:${v.line}: ${v.what} is ${v.lines} lines (limit ${v.limit})\n`);
  }
  if (violations.length > 0) {
    process.stdout.write(`${violations.length} size violation(s)\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`src/: no file over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES}\n`);
  }
}
