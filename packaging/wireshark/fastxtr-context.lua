-- FastXtr agent context for Wireshark and tshark (draft-wang-lisp-ai-agent-00; wire encoding in FastXtr's
-- CONTEXT-EXTENSION.md): the JSON LCAF (RFC 8060 type 14) that LISP control messages carry inside AFI-List LCAFs,
--   in RLOC records (Map-Register, Map-Reply, Map-Notify):  {"agent-context": {"hardware": [...], "latency": ...}}
--   in a Map-Request's Source-EID:                          {"agent-constraints": {"hardware": [...], ...}}
-- is shown as a tree with one filterable field per key, for example
--   tshark -X lua_script:fastxtr-context.lua -r capture.pcap -Y 'agent-context.hardware == "gpu"'
--   tshark -X lua_script:fastxtr-context.lua -r capture.pcap -Y 'agent-constraints.states == "ready"' -V
-- Wireshark 4.0's LISP dissector stops at this LCAF ("Not dissected yet"); this post-dissector finds each JSON LCAF
-- in a LISP control packet (UDP port 4342) by its header, checks that its lengths agree, and parses the JSON.
-- Install: copy into ~/.local/lib/wireshark/plugins/ (or /usr/lib/x86_64-linux-gnu/wireshark/plugins/).

local context = Proto("agent-context", "LISP agent context (JSON LCAF)")
local constraints = Proto("agent-constraints", "LISP agent constraints (JSON LCAF)")

local cf = {
    rloc = ProtoField.ipv4("agent-context.rloc", "RLOC"),
    rloc6 = ProtoField.ipv6("agent-context.rloc6", "RLOC (IPv6)"),
    latency = ProtoField.string("agent-context.latency", "Latency class"),
    hardware = ProtoField.string("agent-context.hardware", "Hardware"),
    state = ProtoField.string("agent-context.state", "State"),
    security = ProtoField.uint8("agent-context.security-level", "Security level"),
    load = ProtoField.uint8("agent-context.load", "Load (percent)"),
    other = ProtoField.string("agent-context.other", "Other key"),
    json = ProtoField.string("agent-context.json", "JSON"),
}
context.fields = { cf.rloc, cf.rloc6, cf.latency, cf.hardware, cf.state, cf.security, cf.load, cf.other, cf.json }

local kf = {
    hardware = ProtoField.string("agent-constraints.hardware", "Required hardware"),
    max_latency = ProtoField.string("agent-constraints.max-latency", "Maximum latency class"),
    min_security = ProtoField.uint8("agent-constraints.min-security-level", "Minimum security level"),
    states = ProtoField.string("agent-constraints.states", "Acceptable state"),
    other = ProtoField.string("agent-constraints.other", "Other key"),
    json = ProtoField.string("agent-constraints.json", "JSON"),
}
constraints.fields = { kf.hardware, kf.max_latency, kf.min_security, kf.states, kf.other, kf.json }

local malformed = ProtoExpert.new("agent-context.malformed", "JSON LCAF whose JSON does not parse", expert.group.MALFORMED, expert.severity.WARN)
local wrong_type = ProtoExpert.new("agent-context.wrong_type", "agent context value of the wrong type", expert.group.PROTOCOL, expert.severity.WARN)
context.experts = { malformed, wrong_type }

local LISP_CONTROL_PORT = 4342
local AFI_LCAF, AFI_IPV4, AFI_IPV6 = 16387, 1, 2
local LCAF_JSON = 14

-- A small JSON reader: objects, arrays, strings (with escapes), numbers, true, false, null. Returns value, next
-- position; or nil and the reason.
local function parse_json(s)
    local pos = 1
    local function ws() pos = s:find("[^ \t\r\n]", pos) or (#s + 1) end
    local value
    local function str()
        local out, i = {}, pos + 1
        while i <= #s do
            local c = s:sub(i, i)
            if c == '"' then pos = i + 1; return table.concat(out) end
            if c == "\\" then
                local e = s:sub(i + 1, i + 1)
                local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
                if map[e] then out[#out + 1] = map[e]; i = i + 2
                elseif e == "u" then
                    local code = tonumber(s:sub(i + 2, i + 5), 16)
                    if not code then return nil, "bad \\u escape" end
                    out[#out + 1] = code < 128 and string.char(code) or "?"; i = i + 6
                else return nil, "bad escape" end
            else out[#out + 1] = c; i = i + 1 end
        end
        return nil, "unterminated string"
    end
    function value()
        ws()
        local c = s:sub(pos, pos)
        if c == "{" then
            local obj, keys = {}, {}
            pos = pos + 1; ws()
            if s:sub(pos, pos) == "}" then pos = pos + 1; return obj, keys end
            while true do
                ws()
                if s:sub(pos, pos) ~= '"' then return nil, "expected a key at " .. pos end
                local k, err = str(); if not k then return nil, err end
                ws(); if s:sub(pos, pos) ~= ":" then return nil, "expected ':' at " .. pos end
                pos = pos + 1
                local v, e2 = value(); if v == nil then return nil, e2 end
                obj[k] = v; keys[#keys + 1] = k
                ws()
                local d = s:sub(pos, pos); pos = pos + 1
                if d == "}" then return obj, keys end
                if d ~= "," then return nil, "expected ',' or '}' at " .. (pos - 1) end
            end
        elseif c == "[" then
            local arr = { __array = true }
            pos = pos + 1; ws()
            if s:sub(pos, pos) == "]" then pos = pos + 1; return arr end
            while true do
                local v, err = value(); if v == nil then return nil, err end
                arr[#arr + 1] = v
                ws()
                local d = s:sub(pos, pos); pos = pos + 1
                if d == "]" then return arr end
                if d ~= "," then return nil, "expected ',' or ']' at " .. (pos - 1) end
            end
        elseif c == '"' then return str()
        elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
        elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
        elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return "null"
        else
            local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
            if not num or num == "" then return nil, "unexpected '" .. c .. "' at " .. pos end
            pos = pos + #num
            return tonumber(num)
        end
    end
    -- An object comes with its keys in order as the second value (Lua tables keep none).
    local v, extra = value()
    if v == nil then return nil, extra end
    ws()
    if pos <= #s then return nil, "text after the JSON value at " .. pos end
    return v, extra
end

local function show(v)
    if type(v) ~= "table" then return tostring(v) end
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = show(x) end
    return (v.__array and "[" or "{") .. table.concat(parts, ",") .. (v.__array and "]" or "}")
end

-- One string field per element of an array (so that 'field == "x"' matches any element), or for a string.
local function add_strings(tree, field, range, v, bad)
    if type(v) == "string" then tree:add(field, range, v); return end
    if type(v) == "table" and v.__array then
        for _, x in ipairs(v) do
            if type(x) == "string" then tree:add(field, range, x) else tree:add_proto_expert_info(bad, "not a string: " .. show(x)) end
        end
        return
    end
    tree:add_proto_expert_info(bad, "expected a string or an array of strings, got " .. show(v))
end

local function add_number(tree, field, range, v, bad, max)
    if type(v) == "number" and v >= 0 and v <= max and v == math.floor(v) then tree:add(field, range, v)
    else tree:add_proto_expert_info(bad, "expected an integer 0.." .. max .. ", got " .. show(v)) end
end

local function dissect_json_lcaf(tvb, tree, at, json_len)
    local text_range = tvb(at + 10, json_len)
    local text = text_range:string()
    local obj, err = parse_json(text)
    local lcaf_range = tvb(at, 10 + json_len + 2)
    if type(obj) ~= "table" or obj.__array then
        local t = tree:add(context, lcaf_range)
        t:add(cf.json, text_range, text)
        t:add_proto_expert_info(malformed, type(err) == "string" and err or "not a JSON object")
        return
    end
    local ctx, cons = obj["agent-context"], obj["agent-constraints"]
    if type(ctx) == "table" and not ctx.__array then
        local t = tree:add(context, lcaf_range)
        -- The RLOC is the AFI-List item just before the JSON LCAF (CONTEXT-EXTENSION.md §1).
        if at >= 6 and tvb(at - 6, 2):uint() == AFI_IPV4 then t:add(cf.rloc, tvb(at - 4, 4))
        elseif at >= 18 and tvb(at - 18, 2):uint() == AFI_IPV6 then t:add(cf.rloc6, tvb(at - 16, 16)) end
        local _, inner = parse_json(text:match('"agent%-context"%s*:%s*(%b{})') or "{}")
        for _, k in ipairs(inner or {}) do
            local v = ctx[k]
            if k == "hardware" then add_strings(t, cf.hardware, text_range, v, wrong_type)
            elseif k == "latency" then add_strings(t, cf.latency, text_range, v, wrong_type)
            elseif k == "state" then add_strings(t, cf.state, text_range, v, wrong_type)
            elseif k == "security-level" then add_number(t, cf.security, text_range, v, wrong_type, 7)
            elseif k == "load" then add_number(t, cf.load, text_range, v, wrong_type, 100)
            else t:add(cf.other, text_range, k .. " = " .. show(v)) end
        end
        t:add(cf.json, text_range, text)
        t:append_text(": " .. show(ctx.hardware or {}) .. " " .. tostring(ctx.latency or "-") .. " " .. tostring(ctx.state or "-"))
    elseif type(cons) == "table" and not cons.__array then
        local t = tree:add(constraints, lcaf_range)
        local _, inner = parse_json(text:match('"agent%-constraints"%s*:%s*(%b{})') or "{}")
        for _, k in ipairs(inner or {}) do
            local v = cons[k]
            if k == "hardware" then add_strings(t, kf.hardware, text_range, v, wrong_type)
            elseif k == "max-latency" then add_strings(t, kf.max_latency, text_range, v, wrong_type)
            elseif k == "states" then add_strings(t, kf.states, text_range, v, wrong_type)
            elseif k == "min-security-level" then add_number(t, kf.min_security, text_range, v, wrong_type, 7)
            else t:add(kf.other, text_range, k .. " = " .. show(v)) end
        end
        t:add(kf.json, text_range, text)
    else
        local t = tree:add(context, lcaf_range, "LISP JSON LCAF (neither agent-context nor agent-constraints)")
        t:add(cf.json, text_range, text)
    end
end

function context.dissector(tvb, pinfo, tree)
    if pinfo.src_port ~= LISP_CONTROL_PORT and pinfo.dst_port ~= LISP_CONTROL_PORT then return end
    local n = tvb:len()
    local i = 0
    -- LCAF (RFC 8060 §3): AFI 16387, Rsvd1, Flags, Type, Rsvd2, Length; a JSON LCAF's Length covers the JSON
    -- length field, the text and the trailing AFI (RFC 8060 §4.9): 2 + text + 2.
    while i + 12 <= n do
        if tvb(i, 2):uint() == AFI_LCAF and tvb(i + 4, 1):uint() == LCAF_JSON then
            local lcaf_len, json_len = tvb(i + 6, 2):uint(), tvb(i + 8, 2):uint()
            if lcaf_len == json_len + 4 and i + 10 + json_len + 2 <= n and json_len > 0 and tvb(i + 10, 1):uint() == 0x7b then
                dissect_json_lcaf(tvb, tree, i, json_len)
                i = i + 8 + lcaf_len
            else
                i = i + 1
            end
        else
            i = i + 1
        end
    end
end

register_postdissector(context)
