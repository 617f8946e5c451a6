// TlsPolicy.g4 — the tlsp policy language (README "Language reference").
//
// The grammar only fixes the shape of a policy file. Everything that needs
// words a person understands (which setting names and values exist, what a
// valid domain or CIDR is, which levels an inbound list may use) is checked
// after parsing, on the project's own AST, so the messages can say exactly
// what is wrong. Rule names never reach a user: the parse module maps
// tokens to plain words.
grammar TlsPolicy;

// Every child the AST builder needs has a label, so it reads generated
// fields instead of searching the children with dynamic_cast.
policyFile : stmts+=statement* EOF ;

statement
    : header=policyHeader
    | include=includeDirective
    | defaultDomain=defaultDomainBlock
    | domain=domainBlock
    ;

policyHeader       : POLICY name=STRING VERSION label=STRING SEMI ;
includeDirective   : INCLUDE pattern=STRING SEMI ;
defaultDomainBlock : DEFAULT DOMAIN LBRACE dirs+=directionBlock* RBRACE ;
domainBlock        : DOMAIN names=stringList st=status? LBRACE dirs+=directionBlock* RBRACE ;

directionBlock     : dir=(OUTBOUND | INBOUND) LBRACE peers+=peerBlock* RBRACE ;

peerBlock
    : ( isDefault=DEFAULT PEER | PEER names=stringList st=status? )
      LBRACE settings+=setting* RBRACE
    ;

setting    : key=IDENT value=IDENT SEMI ;
stringList : items+=STRING (COMMA items+=STRING)* ;
status     : disabled=DISABLED | ENABLED ;

// ------------------------------------------------------------------ lexer
POLICY   : 'policy' ;
VERSION  : 'version' ;
INCLUDE  : 'include' ;
DEFAULT  : 'default' ;
DOMAIN   : 'domain' ;
PEER     : 'peer' ;
OUTBOUND : 'outbound' ;
INBOUND  : 'inbound' ;
DISABLED : 'disabled' ;
ENABLED  : 'enabled' ;

LBRACE : '{' ;
RBRACE : '}' ;
SEMI   : ';' ;
COMMA  : ',' ;

// Setting names and values: level, min_tls, dane-only, tls1.2, ...
IDENT  : [A-Za-z_] [A-Za-z0-9_.\-]* ;

// No escapes: nothing in a policy needs a quote or a backslash.
STRING : '"' ~["\r\n]* '"' ;
// A string whose closing quote is missing on its line; reported by name.
UNTERMINATED_STRING : '"' ~["\r\n]* ;

LINE_COMMENT  : ('#' | '//') ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
WS            : [ \t\r\n\f]+ -> skip ;

// Anything else is one bad character; the parser reports it in words.
BAD_CHAR : . ;
