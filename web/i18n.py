"""Words of the workbench pages: Chinese first (the default), English with ``lang=en``.

Action names come from :data:`cases.workflow.RULES` (``label_zh``) and
:data:`web.forms.ACTION_FORMS` (English); states, roles and channels are here.
"""

from __future__ import annotations

LANGS = ("zh", "en")

_T: dict[str, tuple[str, str]] = {
    "overview": ("月度概览", "Overview"),
    "activities": ("活动台账", "Activities"),
    "product": ("城市管理案件工作台", "casegrid workbench"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "wrong_password": ("用户名或密码错误", "Wrong username or password"),
    "throttled": ("失败次数过多, 请 {s} 秒后再试", "Too many failed attempts: try again in {s} s"),
    "signed_out": ("已退出", "Signed out"),
    "please_sign_in": ("请先登录", "Please sign in first"),
    "home": ("工作台", "Workbench"),
    "queues": ("工作队列", "Work lists"),
    "search": ("搜索", "Search"),
    "menu": ("菜单", "Menu"),
    "search_hint": ("案件号 / 工单号 / 电话 / 地址", "Case no. / ticket / phone / address"),
    "search_results": ("搜索结果", "Search results"),
    "no_results": ("没有找到案件", "No case found"),
    "search_by_names": ("“{q}”不足三个字, 已按包含它的已知地名搜索地址: {names}",
                        "“{q}” is shorter than three characters: addresses were searched for the known places holding it: {names}"),
    "search_more_names": ("还有更多地名包含“{q}”: 多输入一两个字可缩小范围",
                          "More places hold “{q}”: type a character or two more to narrow it"),
    "search_too_short": ("地址词请至少输入三个字 (小区、道路或地标的名称)",
                         "Type at least three characters of an address (the name of a compound, road or landmark)"),
    "search_no_place": ("没有已知地名包含“{q}”", "no known place holds “{q}”"),
    "maps": ("地图", "Maps"),
    "dispatch_map": ("调度地图", "Dispatch map"),
    "hotspot_map": ("热点分析", "Hotspots"),
    "lang_switch": ("English", "中文"),
    "cases_n": ("件", "cases"),
    "empty_queue": ("此队列没有案件", "Nothing in this list"),
    "filters": ("筛选", "Filters"),
    "apply": ("应用", "Apply"),
    "clear": ("清除", "Clear"),
    "all": ("全部", "All"),
    "subdistrict": ("街道", "Subdistrict"),
    "community": ("社区", "Community"),
    "category": ("类别", "Category"),
    "channel": ("来源", "Channel"),
    "period_from": ("上报起", "Reported from"),
    "period_to": ("上报止", "Reported to"),
    "next_page": ("下一页", "Next page"),
    "first_page": ("第一页", "First page"),
    "case_no": ("案件号", "Case no."),
    "address": ("地址", "Address"),
    "status": ("状态", "Status"),
    "due": ("时限", "Due"),
    "time_left": ("剩余", "Left"),
    "reported_at": ("上报时间", "Reported"),
    "select_all": ("全选", "Select all"),
    "selected_do": ("对选中案件", "With the selected cases"),
    "bulk_done": ("{n} 件已{a}", "{a}: {n} cases"),
    "bulk_failed": ("{n} 件未能{a}", "{a} failed for {n} cases"),
    "nothing_selected": ("请先勾选案件", "Select cases first"),
    "report": ("上报内容", "What was reported"),
    "description": ("描述", "Description"),
    "reporter": ("上报人", "Reporter"),
    "ticket": ("工单号", "Ticket"),
    "location": ("位置", "Location"),
    "post": ("城市管理岗", "Community post"),
    "contact": ("联系人", "Contact"),
    "actions": ("可执行操作", "Actions"),
    "no_actions": ("您在此状态下没有可执行的操作", "No action of yours applies in this state"),
    "timeline": ("办理记录", "History"),
    "evidence": ("照片与材料", "Photos and documents"),
    "no_evidence": ("暂无照片", "No photos yet"),
    # -- photos and documents on the case page (issue 22: web/evidence.py) --
    "no_handling_photos": ("暂无处置或核查照片", "No photos from handling or verification yet"),
    "photos_citizen": ("群众上报照片", "The citizen's photos"),
    "photo_by_citizen": ("群众上报", "Sent by the citizen"),
    "photo_links": ("上报时附带的照片链接", "Photo links sent with the report"),
    "photos_handling": ("处置前后对比", "Before and after the handling"),
    "photos_round": ("第{n}次处置", "Handling {n}"),
    "photo_before": ("处置前", "Before"),
    "photo_after": ("处置后", "After"),
    "no_photo_after": ("处置时未上传照片", "No photo with this handling"),
    "no_photo_before": ("无处置前照片", "No photo from before"),
    "photos_verify": ("核查照片", "Verification photos"),
    "photos_return": ("退单照片", "Photos of the return"),
    "photos_added": ("补充照片与材料", "Photos and documents added"),
    "photo_taken": ("拍摄于 {at}", "Taken {at}"),
    "photo_distance": ("距上报位置 {d} 米", "{d} m from the reported point"),
    "photo_open": ("查看原图", "Open the full image"),
    "photo_document": ("PDF 文件", "PDF document"),
    "photo_add": ("添加照片 (附说明)", "Add photos with a caption"),
    "photo_add_files": ("照片或文件 (可多张, 可直接拍照)", "Photos or documents (several; the camera works too)"),
    "photo_caption": ("说明", "Caption"),
    "photo_add_submit": ("上传", "Upload"),
    "photo_not_taken": ("此操作不带照片, 未执行; 照片请在「添加照片」中上传。",
                        "Nothing was done: this action takes no photos; add them with “Add photos” instead."),
    "photo_none": ("请先选择照片或文件 (可直接拍照)。", "Choose a photo or document first (the camera works too)."),
    "photos_added_n": ("已添加 {n} 个文件", "{n} files added"),
    "photo_input_handle": ("处置后照片 (可多张, 可直接拍照)", "Photos after the handling (several; the camera works too)"),
    "photo_input_verify": ("核查现场照片 (可多张)", "On-site photos (several allowed)"),
    "photo_input_return": ("说明照片 (可选)", "A photo of why (optional)"),
    "photo_limits": ("与本操作一起提交; 每个文件不超过 {mb} MB, 每个案件最多 {n} 个文件",
                     "Sent with this action; up to {mb} MB a file, {n} files a case"),
    "file_too_large": ("「{f}」超过每个文件 {mb} MB 的上限: 请在手机上选择较小尺寸 (或压缩) 后再上传。",
                       "{f} is over the limit of {mb} MB a file: choose a smaller size on the phone and send it again."),
    "file_type": ("「{f}」不是可接受的照片或文件 (按内容判断, 不看文件名): 请选择 JPEG、PNG、WebP、HEIC 照片或 PDF 文件。",
                  "{f} is not a file casegrid accepts (judged by its content, not its name): choose a JPEG, PNG, WebP or HEIC photo, or a PDF."),
    "file_count": ("文件太多: 每个案件最多 {n} 个文件, 请少选几张。",
                   "Too many files: a case holds at most {n}; choose fewer."),
    "file_unreadable": ("「{f}」无法读取 (已损坏、不完整或像素过多): 请重新拍摄, 或选择较小的图片。",
                        "{m}."),
    "files_again": ("本次操作未保存, 请重新选择照片后提交。", "Nothing was saved: choose the photos again and send."),
    "deadline": ("办理时限", "Deadline"),
    "left_working": ("还剩 {t} (工作时间)", "{t} left (working time)"),
    "overdue_by": ("已超期 {t} (工作时间)", "Overdue by {t} (working time)"),
    "no_deadline": ("无时限", "No deadline"),
    "provisional": ("暂定: 该年节假日尚未公布", "Provisional: that year's holidays are not published"),
    "hours_minutes": ("{h}小时{m}分", "{h} h {m} min"),
    "days_hours": ("{d}个工作日{h}小时", "{d} working days {h} h"),
    "changed_title": ("此案件在您打开后已被修改", "This case changed since you opened it"),
    "changed_body": ("您的操作没有保存。以下是其间的变化, 请确认后重试:",
                     "Your action was not saved. Here is what changed; check and try again:"),
    "now_status": ("当前状态: {s}", "Now: {s}"),
    "error": ("出错了", "Something is wrong"),
    "not_found": ("没有这个案件, 或您无权查看", "No such case, or it is not yours to see"),
    "forbidden": ("无权执行", "Not allowed"),
    "csrf_failed": ("表单已过期或来源不明, 未执行任何操作。请刷新页面后重试。",
                    "The form expired or did not come from this site; nothing was changed. "
                    "Reload the page and try again."),
    "done": ("已完成: {a}", "Done: {a}"),
    "next_case": ("下一件", "Next case"),
    "back_to_queue": ("返回队列", "Back to the list"),
    "queue_done": ("队列已处理完", "This list is done"),
    "routing": ("分派依据", "Why this community"),
    "rule_within": ("位于{c}内", "Inside {c}"),
    "rule_nearest": ("不在任何社区内, 就近分派到{c} (距 {d} 米)", "Outside every community, routed to the nearest, {c} ({d} m)"),
    "rule_manual": ("人工改划到{c}", "Moved to {c} by hand"),
    "rule_outside": ("不在任何社区内, 未分派", "Outside every community, not routed"),
    "rule_unlocated": ("没有坐标, 未分派", "No coordinates, not routed"),
    "near_boundary": ("靠近社区边界 (需核实), 备选: {a}", "Near a community boundary (check), alternates: {a}"),
    "duplicates": ("附近可能重复的案件", "Nearby possible duplicates"),
    "no_duplicates": ("附近没有同类案件", "No case of this category nearby"),
    "merge_into": ("合并到此案件", "Merge into this case"),
    "drag_hint": ("拖动标记可修改位置; 保存前会显示新的社区和分派依据",
                  "Drag the marker to move the point; the new community and rule show before saving"),
    "move_preview": ("新位置: {c} · {r}", "New place: {c} · {r}"),
    "move_save": ("保存新位置 (改划社区)", "Save the new place (re-route)"),
    "move_reason": ("改划原因", "Reason for the move"),
    "more_actions": ("更多操作", "More actions"),
    "citizen_loop": ("本月受理案件的回访", "Follow-up of this month's cases"),
    "loop_counts": ("{n} / {d} 件", "{n} of {d} cases"),
    "reply_template": ("常用回复", "Reply template"),
    "reply_template_pick": ("选择模板…", "Choose a template…"),
    "reply_template_hint": ("选择后回复内容按本案填好, 仍可修改", "Fills the reply with this case's facts; edit it as needed"),
    "required": ("必填", "required"),
    "pending_extension": ("延期申请待批: {n} {u}, 原因: {r}", "Extension requested: {n} {u}, because: {r}"),
    "merged_into": ("已合并到案件 {n}", "Merged into case {n}"),
    "role_admin": ("管理员", "Administrator"),
    "role_dispatcher": ("调度员", "Dispatcher"),
    "role_supervisor": ("监督员", "Supervisor"),
    "role_community_officer": ("社区城市管理岗", "Community officer"),
    "role_planner": ("规划分析", "Planner"),
    "role_intake": ("接入系统", "Intake"),
    # -- notifications: 签收, 督办, failed deliveries (issue 23) --
    "role_system": ("系统", "System"),
    "escalated_by": ("{at} 由 {who} 督办", "Escalated {at} by {who}"),
    "escalation_why": ("超期未处置", "still unhandled past its deadline"),
    "handle_due_was": ("处置时限 {at}", "handling was due {at}"),
    "ack_due": ("签收时限 {at}", "acknowledge by {at}"),
    "deliveries_failed": ("通知投递失败", "Failed notifications"),
    "deliveries_hint": ("重试期满仍未送达的通知: 检查接收方后重新发送",
                        "Given up after the retries: check the receiver, then send again"),
    "no_failed_deliveries": ("没有投递失败的通知", "No failed notifications"),
    "delivery_event": ("通知", "Notice"),
    "delivery_channel": ("渠道", "Channel"),
    "delivery_target": ("接收方", "To"),
    "delivery_attempts": ("次数", "Tries"),
    "delivery_error": ("最后错误", "Last error"),
    "delivery_retry": ("重新发送", "Send again"),
    "delivery_retried": ("通知 #{id} 将在下一轮重新发送", "Notification #{id} will be sent at the worker's next pass"),
    "skip_to_content": ("跳到正文", "Skip to content"),
    "open_case": ("详情", "Open"),
    "navigate": ("导航", "Directions"),
    # -- placing address-only cases (需定位, issue 27) --
    "place_title": ("需定位: 按地址放置案件", "To place: put the case on the map"),
    "place_matcher": ("地址匹配结果", "The address matcher said"),
    "place_pick": ("放在这里", "Place it here"),
    "place_none": ("地址匹配没有找到候选位置: 请在地图上点选", "The matcher found no place: click the map"),
    "place_map_hint": ("或在地图上点击/拖动标记放置; 保存前会显示所属社区和分派依据",
                       "Or click the map (drag the marker to adjust); the community and rule show before saving"),
    "place_save": ("保存位置 (记住此地址)", "Save the place (and remember the address)"),
    "place_here": ("案件位置", "The case's place"),
    "place_reason_pick": ("按地址候选定位: {w}", "Placed from the address suggestion: {w}"),
    "place_reason_map": ("调度员按地址在地图上定位", "Placed on the map by the dispatcher from the address"),
    "place_suggested": ("候选", "Suggested"),
    "place_no_suggestion": ("无候选位置", "No suggestion"),
}

# The deadline of the step a case waits on (cases.deadlines.STEPS), in the case page's head.
STEP_DEADLINES: dict[str, tuple[str, str]] = {
    "review": ("审核时限", "Review due"), "dispatch": ("派遣时限", "Dispatch due"),
    "acknowledge": ("签收时限", "Acknowledge due"), "handle": ("处置时限", "Handling due"),
    "reply": ("回复时限", "Reply due"),
}
RULE_WORDS: dict[str, tuple[str, str]] = {
    "within": ("落在社区内", "inside the community"), "nearest": ("就近分派", "nearest community"),
    "manual": ("人工指定", "set by hand"), "outside": ("不在任何社区", "outside every community"),
    "unlocated": ("无坐标", "no coordinates"),
    "inside": ("落在社区内", "inside the community"), "on_boundary": ("位于社区边界上", "on a community boundary"),
    # the address matcher's rules (geo.address_match.ADDRESS_RULES)
    "address_memory": ("地址记忆", "address memory"), "address_doorplate": ("门牌号", "house number"),
    "address_compound": ("小区/楼栋", "compound"), "address_crossing": ("路口", "crossing"),
    "address_road": ("道路", "road"), "address_landmark": ("地标", "landmark"),
    "address_community": ("社区名称", "community name"),
}


def check_lang(lang: str | None) -> str:
    """``zh`` (default) or ``en``; anything else falls back to Chinese (a page, not an API)."""
    return lang if lang in LANGS else "zh"


def strings(lang: str) -> dict[str, str]:
    """The table of one language."""
    i = 1 if lang == "en" else 0
    return {k: v[i] for k, v in _T.items()}


def pick(table: dict[str, tuple[str, str]], key: str | None, lang: str) -> str:
    """``key``'s word in ``table`` (the key itself when it has none)."""
    if key is None:
        return ""
    pair = table.get(key)
    return key if pair is None else pair[1 if lang == "en" else 0]


def address_why(item: dict | None, lang: str) -> str:
    """What the address matcher said about ``item`` (an answer or a suggestion) in ``lang``:
    its reasons in words (:func:`geo.address_why.explain`, the one vocabulary), or the
    stored English words of an answer kept before reasons were stored."""
    from geo.address_why import explain

    if not item:
        return ""
    if item.get("reasons"):
        return explain(item["reasons"], lang)
    return item.get("why") or ""
