// The chat page at /: one self-contained HTML file (no external scripts, styles or fonts).
// It streams /v1/chat/completions and polls /health for the cache type and bytes held;
// /?prompt=TEXT sends TEXT on load.
#include "serve/server.h"

namespace h1bkv {

const char* chat_page_html() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>h1bkv chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:sans-serif;max-width:50em;margin:1em auto;padding:0 1em}
#log{border:1px solid #ccc;min-height:20em;padding:.5em;white-space:pre-wrap;overflow-y:auto}
.user{color:#135;font-weight:bold}.assistant{color:#222}.error{color:#a00}
#stats{font-size:.9em;color:#555;margin:.5em 0}
form{display:flex;gap:.5em}#prompt{flex:1}
</style></head><body>
<h1>h1bkv chat</h1>
<div id="stats">cache: <span id="cache">?</span> &middot; KV held: <span id="held">?</span>
 of <span id="budget">?</span> &middot; active: <span id="active">?</span>
 &middot; last reply: <span id="tps">-</span> tokens/s</div>
<div id="log"></div>
<form id="form"><input id="prompt" autocomplete="off" placeholder="Say something">
<input id="maxtok" type="number" value="128" min="1" style="width:5em" title="max_tokens">
<input id="key" type="password" placeholder="API key" style="width:8em">
<button id="send" type="submit">Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const messages = [];
function fmt(b){return b>=1e6?(b/1e6).toFixed(2)+" MB":b>=1e3?(b/1e3).toFixed(1)+" KB":b+" B";}
async function health(){
  try{const h=await (await fetch("/health")).json();
    document.getElementById("cache").textContent=h.cache;
    document.getElementById("held").textContent=fmt(h.kv_bytes_held);
    document.getElementById("budget").textContent=fmt(h.kv_budget_bytes);
    document.getElementById("active").textContent=h.active+" (+"+h.queued+" queued)";
  }catch(e){}
}
setInterval(health,1000);health();
function line(cls,text){const d=document.createElement("div");d.className=cls;d.textContent=text;log.appendChild(d);return d;}
const form=document.getElementById("form");
form.addEventListener("submit",async ev=>{
  ev.preventDefault();
  const p=document.getElementById("prompt");const text=p.value;if(!text)return;p.value="";
  messages.push({role:"user",content:text});line("user","> "+text);
  const out=line("assistant","");out.id="reply"+messages.length;
  const headers={"Content-Type":"application/json"};
  const key=document.getElementById("key").value;if(key)headers["Authorization"]="Bearer "+key;
  const t0=performance.now();let ntok=0,reply="";
  try{
    const r=await fetch("/v1/chat/completions",{method:"POST",headers,body:JSON.stringify({messages,stream:true,stream_options:{include_usage:true},
      max_tokens:parseInt(document.getElementById("maxtok").value)||128})});
    if(!r.ok){const e=await r.json();throw new Error(e.error?e.error.message:r.statusText);}
    const rd=r.body.getReader();const dec=new TextDecoder();let buf="";
    for(;;){const {value,done}=await rd.read();if(done)break;buf+=dec.decode(value,{stream:true});
      let i;while((i=buf.indexOf("\n\n"))>=0){const ev=buf.slice(0,i);buf=buf.slice(i+2);
        if(!ev.startsWith("data: "))continue;const data=ev.slice(6);if(data==="[DONE]")continue;
        const j=JSON.parse(data);if(j.error)throw new Error(j.error.message);
        const c=j.choices&&j.choices[0]&&j.choices[0].delta&&j.choices[0].delta.content;
        if(c){reply+=c;out.textContent=reply;}
        if(j.usage)ntok=j.usage.completion_tokens;}}
    messages.push({role:"assistant",content:reply});
    const s=(performance.now()-t0)/1000;
    document.getElementById("tps").textContent=(ntok/s).toFixed(1);
  }catch(e){line("error","error: "+e.message);messages.pop();}
  health();
  document.body.dataset.replies=String(messages.length/2);
});
// /?prompt=TEXT sends TEXT at once (a link that starts a conversation; the browser test uses it)
const q=new URLSearchParams(location.search).get("prompt");
if(q){document.getElementById("prompt").value=q;form.requestSubmit();}
</script></body></html>
)HTML";
}

}  // namespace h1bkv
