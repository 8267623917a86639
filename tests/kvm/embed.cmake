# Turn a binary file into a C source with its bytes: cmake -DIN=... -DOUT=... -DNAME=... -P
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n\t"
	body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN}: do not edit. */\n"
	"const unsigned char ${NAME}[] __attribute__((aligned(8))) = {\n\t${body}\n};\n"
	"const unsigned ${NAME}_len = ${len};\n")
