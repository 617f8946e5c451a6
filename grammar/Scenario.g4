// Scenario.g4 — the tlsp scenario language (docs/scenarios.md): scripted
// peer behaviour and the outcome `tlsp simulate` must see.
//
// The grammar fixes the shape of a scenario file: which blocks exist and
// what may nest in what. The words inside a statement (which facts exist,
// which values they take, which combinations make sense) are checked after
// parsing, on the simulator's own syntax tree, so the messages can name the
// fact and suggest the right spelling. Rule names never reach a user: the
// parse module maps tokens to plain words.
grammar Scenario;

// Every child the syntax-tree builder needs has a label, so it reads
// generated fields instead of searching the children.
scenarioFile : scenarios+=scenario* EOF ;

scenario : SCENARIO name=STRING LBRACE items+=scenarioItem* RBRACE ;

scenarioItem
    : mx=mxBlock
    | client=clientBlock
    | sts=mtaStsBlock
    | expect=expectation
    | setting=statement          // direction outbound; from "..."; to "...";
    ;

// The recipient domain's MX answer and the hosts it names.
mxBlock     : MX domain=STRING attrs+=attribute* ( LBRACE hosts+=hostBlock* RBRACE | SEMI ) ;
hostBlock   : HOST name=STRING attrs+=attribute* ( LBRACE facts+=hostFact* RBRACE | SEMI ) ;

// The connecting client of an inbound scenario.
clientBlock : CLIENT address=STRING ( LBRACE facts+=hostFact* RBRACE | SEMI ) ;

hostFact
    : tlsa=tlsaBlock
    | fact=statement             // starttls; no starttls; tls tls1.2 tls1.3; cert expired; ...
    ;

// The TLSA answer for _25._tcp.<host>; records inside, one per statement.
tlsaBlock   : TLSA attrs+=attribute* ( LBRACE records+=statement* RBRACE | SEMI ) ;

// The recipient domain's MTA-STS: TXT record, policy fetch, cached policy.
mtaStsBlock : MTA_STS LBRACE facts+=statement* RBRACE ;

expectation : EXPECT outcome=attributeValue fields+=attribute* SEMI ;

// `[no] word arguments... ;`. Each argument is one token, and the syntax
// tree builder joins a run of adjacent strings into one argument (as in C).
// Why not `STRING+` in `argument`: `argument*` of `STRING+` is ambiguous (is
// `"a" "b"` one argument or two?), and ANTLR settles that by looking ahead
// to the end of the run at every string, so N strings took N^2 steps (40,000
// strings: 50 s). With one token per argument every decision here is LL(1).
statement   : negated=NO? key=IDENT args+=argument* SEMI ;
// `word value`, as in `pref 10`, `dnssec secure`, `reason ok`. A value is
// never followed by a string, so `STRING+` is LL(1) here.
attribute   : key=IDENT value=attributeValue ;
attributeValue : word=IDENT | number=NUMBER | strings+=STRING+ | keyword=(MTA_STS | MX) ;

// Two keywords are also values: `applied mta-sts`, `cached enforce mx "..."`.
argument    : word=IDENT | number=NUMBER | string=STRING | keyword=(MTA_STS | MX) ;

// ------------------------------------------------------------------ lexer
SCENARIO : 'scenario' ;
MX       : 'mx' ;
HOST     : 'host' ;
CLIENT   : 'client' ;
TLSA     : 'tlsa' ;
MTA_STS  : 'mta-sts' ;
EXPECT   : 'expect' ;
NO       : 'no' ;

LBRACE : '{' ;
RBRACE : '}' ;
SEMI   : ';' ;

NUMBER : [0-9]+ ;
// Fact names and values: starttls, addr-dnssec, tls1.2, dane-only, ...
IDENT  : [A-Za-z_] [A-Za-z0-9_.\-]* ;

// Escapes: \n \r \t \" \\ (checked by the parse module).
STRING : '"' ( '\\' ~[\r\n] | ~["\\\r\n] )* '"' ;
// A string whose closing quote is missing on its line; reported by name.
UNTERMINATED_STRING : '"' ( '\\' ~[\r\n] | ~["\\\r\n] )* '\\'? ;

LINE_COMMENT  : ('#' | '//') ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
WS            : [ \t\r\n\f]+ -> skip ;

// Anything else is one bad character; the parser reports it in words.
BAD_CHAR : . ;
