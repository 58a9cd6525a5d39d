"""ES|QL language: lexer, parser, AST, renderer, function registry, analyser."""
