/**
 * Finds a repeated member name in any object of a JSON text. RFC 7519 §4 lets a JWT parser either
 * reject duplicates or take the last one; parsers differ, so a token `{"sub":"a","sub":"b"}` can mean
 * one thing to the issuer's tooling and another to us. We reject instead of guessing.
 *
 * Expects text that JSON.parse has already accepted (it only tracks strings and nesting). Iterative,
 * so deep nesting cannot overflow the stack.
 */
export function findDuplicateMember(json: string): string | undefined {
  // One frame per open container: a Set of member names for objects, undefined for arrays.
  const stack: (Set<string> | undefined)[] = [];
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < json.length; i++) {
        const d = json.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const name = JSON.parse(json.slice(start, i + 1)) as string;
        if (top.has(name)) return name;
        top.add(name);
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(undefined);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== undefined;
    }
  }
  return undefined;
}
